"""The pyfed ClientApp: one algorithm step of one client, exactly as the simulator runs it.

Every train message carries the run's ``FedConfig`` (JSON), the partition (client id) to train, the
round, its learning rate and the algorithm's payload. The node rebuilds the federation from the config
(once per process and config: data, partition, model, algorithm), points the client at the same batch
stream the simulator would use (seeded by (seed, round, client id)), calls ``algo.client_update`` and
replies with the algorithm's message. Per-client state (SCAFFOLD's c_i) lives in ``context.state`` under
the run tag and partition id, so it persists between rounds on the node and never leaves it.

Message types: ``query.pyfed_hello`` (the node reports the partition it holds, from its node config
``partition-id``, or -1) and ``train`` (one local update).
"""

from __future__ import annotations

import functools
import json

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

import kernels
from pyfed.algorithms import LocalConfig
from pyfed.config import FedConfig
from pyfed.flower.records import flat_to_records, records_to_flat, state_from_context, state_to_context
from pyfed.simulator import Federation, _batches, _client_seed, build_federation

__all__ = ["HELLO", "PARTITION_KEY", "app", "federation_for", "handle_hello", "handle_train"]

HELLO = "query.pyfed_hello"
PARTITION_KEY = "partition-id"  # Flower's simulation engine sets it; deployments pass --node-config

app = ClientApp()


@functools.lru_cache(maxsize=2)
def federation_for(cfg_json: str) -> Federation:
    """The federation of a config, built once per process (the simulator's ``build_federation``)."""
    return build_federation(FedConfig(**json.loads(cfg_json)))


@app.query("pyfed_hello")
def handle_hello(message: Message, context: Context) -> Message:
    pid = context.node_config.get(PARTITION_KEY, -1)
    return Message(RecordDict({"hello": ConfigRecord({PARTITION_KEY: int(pid)})}), reply_to=message)


@app.train()
def handle_train(message: Message, context: Context) -> Message:
    conf = message.content["config"]
    fed = federation_for(str(conf["fed-config"]))
    cid, round_ = int(conf[PARTITION_KEY]), int(conf["round"])
    if not 0 <= cid < len(fed.clients):
        raise ValueError(f"partition-id must be in [0, {len(fed.clients)}), got {cid}")
    device = fed.data.x_train.device
    payload = records_to_flat(message.content["payload"], message.content["payload-numbers"], device)
    grad_clip = float(conf["grad-clip"]) if "grad-clip" in conf else None
    local = LocalConfig(
        lr=float(conf["lr"]), local_steps=int(conf["local-steps"]), round=round_, grad_clip=grad_clip
    )
    client = fed.clients[cid]
    seed = _client_seed(fed.cfg.seed, round_, cid)
    idx = fed.client_train[cid]
    client.batches = lambda: _batches(fed.data, idx, fed.cfg.batch_size, seed)
    state_key = f"pyfed.{conf['tag']}.{cid}"
    client.state = state_from_context(context.state, state_key, device)
    with kernels.nvtx.range(f"client {cid}"):
        reply = fed.algo.client_update(fed.model, payload, client, local)
    state_to_context(context.state, state_key, client.state)
    arrays, numbers = flat_to_records(reply)
    info = ConfigRecord({PARTITION_KEY: cid, "round": round_})
    content = RecordDict({"message": arrays, "message-numbers": numbers, "reply-info": info})
    return Message(content, reply_to=message)
