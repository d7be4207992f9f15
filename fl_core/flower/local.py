"""`LocalGrid`: a Flower `Grid` that runs a ClientApp's nodes in this process, one message at a time.

For tests, notebooks and benchmarks without a SuperLink (and without Ray): every message and reply
goes through Flower's protobuf encoding (what the Deployment Engine sends, so its bytes are the wire's)
and each node's `context.state` is encoded and decoded between messages, as if the SuperNode started a
fresh ClientApp process for each (nothing survives in Python objects). `stop_at` makes a node stop
answering from a given (round, privagg stage) on, as a node that crashed or left would.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from fl_core.flower.protocol import RECORD


def wire(content: RecordDict) -> tuple[RecordDict, int]:
    """Content after Flower's protobuf encoding and decoding, and its encoded size in bytes."""
    data = recorddict_to_proto(content).SerializeToString()
    proto = ProtoRecordDict()
    proto.ParseFromString(data)
    return recorddict_from_proto(proto), len(data)


class LocalGrid(Grid):
    """Nodes 1..num_nodes, each with its own node config (e.g. {"partition-id": i}) and run config."""

    def __init__(
        self,
        app: ClientApp,
        num_nodes: int,
        run_config: Mapping[str, Any],
        *,
        node_config: Any = None,
        stop_at: Mapping[int, tuple[int, str]] | None = None,
    ) -> None:
        self.app = app
        self.node_ids = list(range(1, num_nodes + 1))
        self.run_config = dict(run_config)
        self._node_config = node_config or (lambda i: {"partition-id": i - 1, "num-partitions": num_nodes})
        self._state = {nid: wire(RecordDict())[0] for nid in self.node_ids}
        self.stop_at = dict(stop_at or {})
        self.bytes_down: dict[int, int] = defaultdict(int)
        self.bytes_up: dict[int, int] = defaultdict(int)
        self.errors: list[str] = []
        self._run = Run.create_empty(1)
        self._stopped: set[int] = set()
        for attr in ("run_id", "task_id", "node_id"):  # what a ServerApp process is given by its runtime
            try:
                getattr(TaskIdentity, attr)
            except RuntimeError:
                setattr(TaskIdentity, attr, 1 if attr == "run_id" else 0)

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return [n for n in self.node_ids if n not in self._stopped]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise TypeError("LocalGrid delivers synchronously: use send_and_receive")

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[str]:
        raise TypeError("LocalGrid delivers synchronously: use send_and_receive")

    def _stops(self, nid: int, msg: Message) -> bool:
        if nid in self._stopped:
            return True
        when = self.stop_at.get(nid)
        if when is None:
            return False
        rec = msg.content.config_records.get(RECORD)
        stage = rec.get("stage") if rec is not None else msg.metadata.message_type
        rnd = rec.get("round") if rec is not None else int(msg.metadata.group_id or 0)
        if (rnd, stage) == when:
            self._stopped.add(nid)
            return True
        return False

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        replies = []
        for msg in list(messages):
            nid = msg.metadata.dst_node_id
            if nid not in self.node_ids or self._stops(nid, msg):
                continue  # no reply: what a timeout looks like on a real grid
            content, n = wire(msg.content)
            self.bytes_down[nid] += n
            delivered = Message(content, nid, msg.metadata.message_type, group_id=msg.metadata.group_id)
            delivered.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            delivered.metadata.__dict__["_src_node_id"] = 0
            ctx = Context(
                run_id=1, node_id=nid, node_config=self._node_config(nid), state=self._state[nid],
                run_config=dict(self.run_config),
            )  # fmt: skip
            try:
                reply = self.app(delivered, ctx)
            except Exception as exc:  # what Flower's runtimes do: an error reply
                self.errors.append(f"node {nid}: {type(exc).__name__}: {exc}")
                reply = Message(
                    Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=f"{type(exc).__name__}: {exc}"),
                    reply_to=delivered,
                )
            self._state[nid] = wire(ctx.state)[0]  # only what serializes survives to the next message
            if reply.has_content():
                content, n = wire(reply.content)
                self.bytes_up[nid] += n
                reply = Message(content, reply_to=delivered)
            replies.append(reply)
        return replies
