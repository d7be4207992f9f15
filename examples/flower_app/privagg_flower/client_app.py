"""The ClientApp: the user's train function, with privagg's mod in front of it."""

from __future__ import annotations

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fl_core.flower import privagg_mod
from fl_core.flower.arrays import flatten, unflatten

app = ClientApp()


@app.train(mods=[privagg_mod])
def train(msg: Message, context: Context) -> Message:
    from privagg_flower import task  # torch only where training happens: the key stages start faster

    cfg = task.app_config(context.run_config)
    arrays = msg.content["arrays"]
    server_round = int(msg.content["config"]["server-round"])
    pid = int(context.node_config["partition-id"])
    weights, count, loss = task.train(cfg, pid, flatten(arrays), server_round)
    metrics = MetricRecord({"num-examples": count, "train_loss": loss})
    return Message(RecordDict({"arrays": unflatten(weights, arrays), "metrics": metrics}), reply_to=msg)
