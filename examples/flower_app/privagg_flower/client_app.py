"""The ClientApp: the user's train function, with privagg's mod in front of it."""

from __future__ import annotations

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fl_core.flower import dp_sgd_record, privagg_mod
from fl_core.flower.arrays import flatten, unflatten
from fl_core.flower.protocol import DP_SGD_RECORD

app = ClientApp()


@app.train(mods=[privagg_mod])
def train(msg: Message, context: Context) -> Message:
    from privagg_flower import task  # torch only where training happens: the key stages start faster

    cfg = task.app_config(context.run_config)
    arrays = msg.content["arrays"]
    server_round = int(msg.content["config"]["server-round"])
    pid = int(context.node_config["partition-id"])
    weights, count, loss, event = task.train(cfg, pid, flatten(arrays), server_round)
    metrics = MetricRecord({"num-examples": count, "train_loss": loss})
    content = RecordDict({"arrays": unflatten(weights, arrays), "metrics": metrics})
    if event is not None:  # dp.mode = "local": the mod charges it to this node's ledger, then strips it
        content[DP_SGD_RECORD] = dp_sgd_record(event)
    return Message(content, reply_to=msg)
