"""Every differential case's graph built with arqgraph's names, for the processes of a cluster
to serve (`tests.differential.served:GRAPHS`, see tests/test_differential_cluster.py)."""

from tests.differential.api import Api
from tests.differential.cases import CASES
from tests.graphs.durability_graphs import (
    build_breakpoint_subgraph,
    build_exit_resume,
    build_nested_durability,
    build_stopped_handler,
    build_subgraph_then_question,
)
from tests.graphs.functional_graphs import (
    build_asking_entrypoint,
    build_cached_calls,
    build_cancelled_call,
    build_counting_entrypoint,
    build_flaky_call,
    build_nested_model_calls,
    build_nested_tasks,
    build_slow_call,
    build_streaming_calls,
    build_traced_calls,
    build_two_asking_calls,
)
from tests.graphs.timeout_graphs import BUILDS as TIMEOUT_BUILDS
from tests.graphs.token_graphs import gated_tokens
from tests.graphs.traced_graphs import FLAGS, build_lifecycle, build_policed, build_traced

GRAPHS = [case.build(Api("arqgraph")) for case in CASES if case.cluster is True]
GRAPHS += [build_traced(Api("arqgraph"), **flags) for flags in FLAGS]
GRAPHS += [build_lifecycle(Api("arqgraph")), build_policed(Api("arqgraph"))]
GRAPHS += [build("arqgraph") for build, _ in TIMEOUT_BUILDS.values()]
GRAPHS += [build_nested_tasks("arqgraph"), build_traced_calls("arqgraph"),
           build_streaming_calls("arqgraph"), build_cancelled_call("arqgraph"),
           build_cached_calls("arqgraph"), build_two_asking_calls("arqgraph"),
           build_two_asking_calls("arqgraph", reverse=True),
           build_slow_call("arqgraph"), build_nested_model_calls("arqgraph"),
           build_asking_entrypoint("arqgraph"), build_flaky_call("arqgraph"),
           build_counting_entrypoint("arqgraph")]
GRAPHS += [build_nested_durability("arqgraph"), build_nested_durability("arqgraph", invoked=True),
           build_exit_resume("arqgraph"), build_breakpoint_subgraph("arqgraph"),
           build_subgraph_then_question("arqgraph"), build_stopped_handler("arqgraph")]
GRAPHS += [gated_tokens]
