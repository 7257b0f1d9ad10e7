"""Training: the MTP drafter by self-distillation against its target (`edge-mtp train-drafter`), and the
small language-model training that makes the built-in demo pair (`edge_mtp.train.demo`).

PyTorch and the export modules of `edge_mtp.model` only; transformers is needed just where a target is
first written in its real layout (`edge_mtp.train.demo`, like `edge_mtp.checkpoints.make`).
"""
