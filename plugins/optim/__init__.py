"""Optimizers and learning-rate schedulers from torch, by name."""
from kitpose import hookimpl


@hookimpl
def kitpose_register(registry):
    registry.optimizer("sgd", "torch.optim:SGD", summary="Stochastic gradient descent (torch.optim.SGD)")
    registry.optimizer("adam", "torch.optim:Adam", summary="Adam (torch.optim.Adam)")
    registry.optimizer("adamw", "torch.optim:AdamW", summary="Adam with decoupled weight decay (torch.optim.AdamW)")
    registry.scheduler("step", "torch.optim.lr_scheduler:StepLR",
                       summary="Multiply the lr by gamma every step_size epochs")
    registry.scheduler("multistep", "torch.optim.lr_scheduler:MultiStepLR",
                       summary="Multiply the lr by gamma at each milestone epoch")
    registry.scheduler("cosine", "torch.optim.lr_scheduler:CosineAnnealingLR",
                       summary="Cosine annealing to eta_min over T_max epochs")
