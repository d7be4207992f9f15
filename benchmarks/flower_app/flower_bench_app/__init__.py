"""One Flower app, three contenders on the same task (the example app's digits CNN): plain FedAvg,
Flower's own SecAgg+ (legacy workflow, `secaggplus_mod`), and privagg's plug-in. `contender` in the run
config picks one on both sides."""
