"""The ClientApp: the same train step for every contender; the contender picks the wrapper around it."""

from __future__ import annotations

import numpy as np
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp

from fl_core.flower import privagg_mod
from fl_core.flower.arrays import flatten, unflatten


def _train(context: Context, global_vec: np.ndarray, server_round: int) -> tuple[np.ndarray, int, float]:
    from privagg_flower import task  # the example app's task (PYTHONPATH has examples/flower_app)

    cfg = task.app_config(context.run_config)
    return task.train(cfg, int(context.node_config["partition-id"]), global_vec, server_round)[:3]


def _message_app(mods: list) -> ClientApp:  # type: ignore[type-arg]
    app = ClientApp()

    @app.train(mods=mods)
    def train(msg: Message, context: Context) -> Message:
        arrays = msg.content["arrays"]
        w, n, loss = _train(context, flatten(arrays), int(msg.content["config"]["server-round"]))
        content = RecordDict(
            {"arrays": unflatten(w, arrays), "metrics": MetricRecord({"num-examples": n, "train_loss": loss})}
        )
        return Message(content, reply_to=msg)

    return app


class _LegacyClient(NumPyClient):
    def __init__(self, context: Context) -> None:
        self.context = context

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        shapes = [p.shape for p in parameters]
        flat = np.concatenate([np.asarray(p, np.float32).ravel() for p in parameters])
        w, n, loss = _train(
            self.context, flat, int(config.get("server_round", config.get("server-round", 1)))
        )
        out, at = [], 0
        for s in shapes:
            k = int(np.prod(s))
            out.append(w[at : at + k].reshape(s).astype(np.float32))
            at += k
        return out, n, {"train_loss": loss}


def _client_fn(context: Context):  # type: ignore[no-untyped-def]
    return _LegacyClient(context).to_client()


_APPS = {
    "plain": _message_app([]),
    "privagg": _message_app([privagg_mod]),
    "secaggplus": ClientApp(client_fn=_client_fn, mods=[secaggplus_mod]),
}


class ContenderApp(ClientApp):
    """Dispatches each message to the contender the run config names."""

    def __call__(self, message: Message, context: Context) -> Message:
        return _APPS[str(context.run_config["contender"])](message, context)


app = ContenderApp()
