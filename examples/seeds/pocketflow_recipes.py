"""Seed 003, "Chapter 7: Asynchronous Execution" (PocketFlow), on arqgraph: the document's
`FetchRecipes` (AsyncNode) and `SuggestRecipe` (Node) in an `AsyncFlow`, the classes from the
`pocketflow` package unchanged, run by `arqgraph.pocketflow.flow_graph`: the flow runs on a
worker. `await graph.ainvoke(shared)` (the final store) or `await graph.run_async(shared)` (the
last action, `shared` updated) replaces `await my_flow.run_async(shared)`. The document prints

    Starting async recipe flow...
    🌐 Fetching recipes for 'chicken'... (simulating 2 sec delay)
    ✅ Recipes for 'chicken' fetched!
    Stored recipes for chicken.
    💡 Suggestion: Pizza

    Async recipe flow finished.

and so does this.

    python examples/seeds/pocketflow_recipes.py
    arqgraph run examples.seeds.pocketflow_recipes:graph --input '{"user_ingredient": "chicken"}'
"""

import asyncio

from pocketflow import AsyncFlow, AsyncNode, Node

from arqgraph.pocketflow import flow_graph

try:
    from examples.seeds.standins import sleep
except ModuleNotFoundError:  # run as a script: python examples/seeds/pocketflow_recipes.py
    from standins import sleep  # type: ignore[no-redef]


async def fetch_recipes_from_internet(ingredient):
    print(f"🌐 Fetching recipes for '{ingredient}'... (simulating 2 sec delay)", flush=True)
    await sleep(2)  # Pauses this task, but not the whole program!
    print(f"✅ Recipes for '{ingredient}' fetched!", flush=True)
    return ["Pizza", "Pasta", "Salad"]


class FetchRecipes(AsyncNode):
    async def prep_async(self, shared):
        """Asynchronously get ingredient from shared state or user."""
        ingredient = shared.get("user_ingredient", "chicken")
        return ingredient

    async def exec_async(self, ingredient):
        """Asynchronously fetch recipes using an awaitable function."""
        recipes = await fetch_recipes_from_internet(ingredient)
        return recipes

    async def post_async(self, shared, prep_res, recipes):
        """Asynchronously store recipes and signal next step."""
        shared["recipes"] = recipes
        shared["ingredient"] = prep_res
        print(f"Stored recipes for {shared['ingredient']}.", flush=True)
        return "suggest"  # Action to go to the next node


class SuggestRecipe(Node):  # This can be a regular Node, even in an AsyncFlow
    def post(self, shared, prep_res, suggestion):
        print(f"💡 Suggestion: {shared.get('recipes', [])[0]}", flush=True)
        return "done"  # End the flow


def create_recipe_flow():
    fetch_node = FetchRecipes()
    suggest_node = SuggestRecipe()
    fetch_node - "suggest" >> suggest_node
    flow = AsyncFlow(start=fetch_node)
    return flow


graph = flow_graph(create_recipe_flow(), name="seeds.pocketflow_recipes")


async def run_async_demo():
    initial_shared = {"user_ingredient": "chicken"}
    print("Starting async recipe flow...")
    final_shared = await graph.ainvoke(initial_shared)
    print("\nAsync recipe flow finished.")
    return final_shared


async def main():
    return await run_async_demo()


if __name__ == "__main__":
    asyncio.run(main())
