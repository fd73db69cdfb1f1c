"""TF_CONFIG, the cluster description of multi-worker training: read in one place, for the strategy and for
which process logs and saves."""

import json
import os

from brain_mri.common.errors import PipelineError


def tf_config() -> dict:
    """TF_CONFIG parsed ({} when unset); a malformed one is one line saying what it should hold."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return {}
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        hosts = cluster[task["type"]]
        valid = (
            all(isinstance(members, list) and members for members in cluster.values())
            and type(task["index"]) is int
            and 0 <= task["index"] < len(hosts)
        )
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise PipelineError(
            'TF_CONFIG is not a cluster description; set it to JSON like {"cluster": {"worker": ["host1:port", '
            '"host2:port"]}, "task": {"type": "worker", "index": 0}}, or unset it'
        )
    return config


def is_chief() -> bool:
    """True unless TF_CONFIG names this process a worker other than worker 0 (or a cluster has a chief)."""
    config = tf_config()
    if not config or config["task"]["type"] == "chief":
        return True
    return config["task"]["type"] == "worker" and config["task"]["index"] == 0 and "chief" not in config["cluster"]
