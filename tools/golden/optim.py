"""Golden trajectories for @webpeft/optim, written by PyTorch and transformers.

Run: .venv-golden/bin/python tools/golden/optim.py   (see tools/golden/README.md)

Writes two small JSON fixtures under packages/optim/src/__tests__/fixtures/:

- optim-trajectories.json: three float32 parameters in two parameter groups (different
  lr / weight decay / betas), gradients for 10 steps drawn from a seeded numpy RNG (given
  explicitly per step, not from a model), and the parameters after every step of each
  optimizer configuration.
- schedules.json: learning rates of two parameter groups, step by step, under
  transformers' own get_constant_schedule_with_warmup / get_linear_schedule_with_warmup /
  get_cosine_schedule_with_warmup (each a torch LambdaLR).

PyTorch's single-tensor code paths are used (foreach=False), which is the formula order
the cpu reference of @webpeft/optim follows. Both fixtures record the library versions.
"""
import json
import os

import numpy as np
import torch
from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

from common import versions

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'packages', 'optim', 'src', '__tests__', 'fixtures')
STEPS = 10
SHAPES = [[3, 4], [5], [2, 3]]
# Parameters 0 and 1 are in group 0, parameter 2 in group 1.
GROUPS = [[0, 1], [2]]


def f32_list(a):
    return [float(x) for x in np.asarray(a, dtype=np.float32).reshape(-1)]


rng = np.random.default_rng(20240611)
init = [rng.uniform(-1.0, 1.0, size=s).astype(np.float32) for s in SHAPES]
# Gradients with varied magnitudes so that Adam's second moment and Lion's sign differ.
grads = [[(rng.standard_normal(size=s) * (0.1 + k)).astype(np.float32) for k, s in enumerate(SHAPES)] for _ in range(STEPS)]


class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2).

    torch has no Lion. The update per step, with decoupled weight decay applied first as in
    the paper's reference implementation:
        p = p * (1 - lr * wd)
        c = beta1 * m + (1 - beta1) * g
        p = p - lr * sign(c)
        m = beta2 * m + (1 - beta2) * g
    which equals p -= lr * (sign(c) + wd * p) up to float rounding order.
    """

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group['betas']
            for p in group['params']:
                if p.grad is None:
                    continue
                state = self.state[p]
                if 'exp_avg' not in state:
                    state['exp_avg'] = torch.zeros_like(p)
                m = state['exp_avg']
                g = p.grad
                p.mul_(1 - group['lr'] * group['weight_decay'])
                c = m.mul(beta1).add_(g, alpha=1 - beta1)
                p.add_(torch.sign(c), alpha=-group['lr'])
                m.mul_(beta2).add_(g, alpha=1 - beta2)


# name -> (constructor, hyperparameters of group 0, hyperparameters of group 1)
CONFIGS = {
    'sgd': (torch.optim.SGD, dict(lr=0.1, weight_decay=0.01), dict(lr=0.05, weight_decay=0.0)),
    'sgd_momentum': (torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
                     dict(lr=0.05, momentum=0.5, dampening=0.0, weight_decay=0.02)),
    'sgd_nesterov': (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                     dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.0)),
    'adam': (torch.optim.Adam, dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
             dict(lr=0.003, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.0)),
    'adam_amsgrad': (torch.optim.Adam, dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=True),
                     dict(lr=0.003, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    'adamw': (torch.optim.AdamW, dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
              dict(lr=0.003, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    'adamw_amsgrad': (torch.optim.AdamW, dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=True),
                      dict(lr=0.003, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    'lion': (Lion, dict(lr=0.001, betas=(0.9, 0.99), weight_decay=0.1),
             dict(lr=0.0003, betas=(0.95, 0.98), weight_decay=0.0)),
}


def run(ctor, h0, h1):
    params = [torch.tensor(p, dtype=torch.float32, requires_grad=True) for p in init]
    groups = [dict(params=[params[i] for i in GROUPS[0]], **h0), dict(params=[params[i] for i in GROUPS[1]], **h1)]
    extra = {} if ctor is Lion else dict(foreach=False)
    opt = ctor(groups, **extra)
    traj = []
    for step in range(STEPS):
        for i, p in enumerate(params):
            p.grad = torch.tensor(grads[step][i], dtype=torch.float32)
        opt.step()
        traj.append([f32_list(p.detach().numpy()) for p in params])
    return traj


def js_hyper(h):
    """Hyperparameters under the TypeScript option names."""
    names = dict(lr='lr', weight_decay='weightDecay', betas='betas', eps='eps', amsgrad='amsgrad',
                 momentum='momentum', dampening='dampening', nesterov='nesterov')
    return {names[k]: (list(v) if isinstance(v, tuple) else v) for k, v in h.items()}


trajectories = {
    'generator': 'tools/golden/optim.py (torch.optim, foreach=False)',
    'versions': versions(),
    'shapes': SHAPES,
    'groups': GROUPS,
    'init': [f32_list(p) for p in init],
    'grads': [[f32_list(g) for g in step] for step in grads],
    'configs': {
        name: dict(optimizer=ctor.__name__, groups=[js_hyper(h0), js_hyper(h1)], params=run(ctor, h0, h1))
        for name, (ctor, h0, h1) in CONFIGS.items()
    },
}


# ---- schedules -------------------------------------------------------------------------
# transformers' own schedule constructors (transformers/optimization.py), each a LambdaLR.

SCHEDULES = {
    'constant': ('constant', dict(warmupSteps=0), lambda o: get_constant_schedule_with_warmup(o, 0)),
    'constant_warmup': ('constant', dict(warmupSteps=4), lambda o: get_constant_schedule_with_warmup(o, 4)),
    'linear': ('linear', dict(warmupSteps=3, totalSteps=12), lambda o: get_linear_schedule_with_warmup(o, 3, 12)),
    'linear_no_warmup': ('linear', dict(warmupSteps=0, totalSteps=10), lambda o: get_linear_schedule_with_warmup(o, 0, 10)),
    'cosine': ('cosine', dict(warmupSteps=3, totalSteps=12), lambda o: get_cosine_schedule_with_warmup(o, 3, 12)),
    'cosine_cycles': ('cosine', dict(warmupSteps=2, totalSteps=12, numCycles=1.5), lambda o: get_cosine_schedule_with_warmup(o, 2, 12, 1.5)),
}
BASE_LRS = [0.1, 0.02]
SCHEDULE_STEPS = 15


def schedule_lrs(make_scheduler):
    p0 = torch.zeros(1, requires_grad=True)
    p1 = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([dict(params=[p0], lr=BASE_LRS[0]), dict(params=[p1], lr=BASE_LRS[1])])
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(SCHEDULE_STEPS):
        lrs.append([g['lr'] for g in opt.param_groups])
        opt.step()
        sched.step()
    return lrs


schedules = {
    'generator': 'tools/golden/optim.py (transformers schedules driving torch LambdaLR)',
    'versions': versions(),
    'baseLrs': BASE_LRS,
    'schedules': {name: dict(kind=kind, options=opts, lrs=schedule_lrs(fn)) for name, (kind, opts, fn) in SCHEDULES.items()},
}

os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, 'optim-trajectories.json'), 'w') as f:
    json.dump(trajectories, f, separators=(',', ':'))
with open(os.path.join(OUT, 'schedules.json'), 'w') as f:
    json.dump(schedules, f, separators=(',', ':'))
print('wrote optim-trajectories.json and schedules.json under', os.path.relpath(OUT))
