"""Seed 002, "Lab 2.4.2 (2) Functional API Parallelism", on arqgraph: the document's code with
`langgraph.func` replaced by `arqgraph.func` (and its sleeps going through `standins.sleep`, scaled
by ARQGRAPH_SEED_SCALE). Each `@task` call is a job of its own on the cluster; the two checks,
gathered, run at the same time. The document prints

    🎯 Functional API screening for Clara Smith
    📄 Parsing resume for Clara Smith (2s)...
       ✅ Resume parsed
    🔍 Background check (3s)...
    📞 Reference check (2s)...
       ✅ References complete
       ✅ Background complete
    📋 Final decision for Clara Smith...
    ⏱️ Functional Parallel Total Time: 5.0 seconds (Expected ~5s)

and so does this (the document's bare `@entrypoint` works here; LangGraph wants `@entrypoint()`).

    python examples/seeds/screening_functional.py
    arqgraph run examples.seeds.screening_functional:graph --input '"Clara Smith"'
"""

import asyncio

from arqgraph.func import entrypoint, task

try:
    from examples.seeds.standins import sleep
except ModuleNotFoundError:  # run as a script: python examples/seeds/screening_functional.py
    from standins import sleep  # type: ignore[no-redef]


@task
async def parse_resume_task(name: str):
    print(f"📄 Parsing resume for {name} (2s)...", flush=True)
    await sleep(2)
    print("   ✅ Resume parsed", flush=True)
    return {"parsed": True}


@task
async def background_task(name: str):
    print("🔍 Background check (3s)...", flush=True)
    await sleep(3)
    print("   ✅ Background complete", flush=True)
    return {"status": "Clear"}


@task
async def reference_task(name: str):
    print("📞 Reference check (2s)...", flush=True)
    await sleep(2)
    print("   ✅ References complete", flush=True)
    return {"status": "Positive"}


@entrypoint
async def screen_candidate(name: str):
    print(f"\n🎯 Functional API screening for {name}", flush=True)
    await parse_resume_task(name)
    # Run in parallel
    background, reference = await asyncio.gather(
        background_task(name),
        reference_task(name)
    )
    print(f"📋 Final decision for {name}...", flush=True)
    return f"HIRED - Background: {background['status']}, Refs: {reference['status']}"


graph = screen_candidate


async def run_func():
    start = asyncio.get_running_loop().time()
    result = await screen_candidate.ainvoke("Clara Smith")
    total = asyncio.get_running_loop().time() - start
    print(f"\n⏱️ Functional Parallel Total Time: {total:.1f} seconds (Expected ~5s)")
    return result


async def main():
    return await run_func()


if __name__ == "__main__":
    print(asyncio.run(main()))
