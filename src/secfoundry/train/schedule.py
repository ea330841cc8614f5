"""Learning-rate schedules for continued pretraining: warmup + cosine, warmup-stable-decay, constant.

Warmup starts from ``warmup_start_ratio * lr``: re-warming from a low LR avoids the loss spike
that a pretrained model shows when a new data distribution meets a high LR at once.
"""

from __future__ import annotations

import math

from secfoundry.train.config import OptimConfig, ScheduleConfig


def lr_at(step: int, total_steps: int, optim: OptimConfig, sched: ScheduleConfig) -> float:
    peak, floor = optim.lr, optim.lr * optim.min_lr_ratio
    warm = max(0, min(sched.warmup_steps, total_steps))
    if step < warm:
        start = peak * sched.warmup_start_ratio
        return start + (peak - start) * (step + 1) / warm
    if sched.kind == "constant":
        return peak
    rest = max(1, total_steps - warm)
    t = min(1.0, (step - warm) / rest)
    if sched.kind == "cosine":
        return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * t))
    if sched.kind == "wsd":
        decay_start = 1.0 - sched.decay_fraction
        if t < decay_start:
            return peak
        u = (t - decay_start) / max(1e-9, sched.decay_fraction)
        return peak - (peak - floor) * u  # linear decay to the floor
    raise ValueError(f"unknown schedule kind {sched.kind!r} (cosine | wsd | constant)")
