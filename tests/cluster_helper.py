"""Run a two-node Ray cluster (separate raylets) with token authentication, as `ray start` clusters run,
until stdin closes. The token comes from RAY_AUTH_TOKEN, so no file in ~/.ray is needed. Prints
{"address", "worker"} as one JSON line; `remove-worker` on stdin stops the
worker node. Used by test_cluster.py; stops only the processes it started.

    python tests/cluster_helper.py
"""

import json
import os
import sys

os.environ["RAY_AUTH_MODE"] = "token"  # must be set before Ray is imported: Ray reads it once
assert os.environ.get("RAY_AUTH_TOKEN"), "pass the cluster's token in RAY_AUTH_TOKEN"

from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
worker = cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
print(json.dumps({"address": cluster.address, "worker": worker.node_id}), flush=True)
try:
    for line in sys.stdin:
        if line.strip() == "remove-worker":
            cluster.remove_node(worker)
            print("removed", flush=True)
finally:
    cluster.shutdown()
