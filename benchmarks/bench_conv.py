"""Convolution speed: fnnet against plain JAX and PyTorch eager, side by side in one process.

1. LeNet-5 train step (batch 128, 32x32x1, conv 6@5x5 - max-pool 2 - conv 16@5x5 -
   max-pool 2 - 120 - 84 - 10, ReLU, softmax cross-entropy, SGD):
   - ``fnnet``: ``nn.serial`` of fnnet Modules + ``train.make_train_step``, with the
     default lowering (``"auto"``: on CPU the per-shape choice of
     :mod:`fnnet.functional._lowering`);
   - ``fnnet[xla]``: the same model forced to XLA's native conv / reduce_window;
   - ``fnnet[matmul]``: forced to the im2col-matmul / reshape lowering everywhere;
   - ``fnnet[cpu_opts]``: the default lowering, compiled with
     ``fnnet.functional.cpu_compiler_options()`` (YNNPACK for matmuls only);
   - ``jax``: plain JAX by hand, ``lax.conv_general_dilated`` + ``lax.reduce_window``;
   - ``torch``: PyTorch eager, NCHW.
2. ResNet-18 (224x224x3, batch 8, train-mode batch norm) forward + backward, written
   here with fnnet's functional kernels, against torchvision-style PyTorch; the
   achieved GFLOP/s (XLA's flop count of the compiled step / time) against the
   measured float32 matmul peak of the same process.

3. ``--scan``: a train step run many times inside one ``lax.scan`` (as
   ``fit(compile_epochs=True)`` and ``fit_population`` do), per step, against the same
   step dispatched once per step and PyTorch eager: a small CNN (3x3 convs 3-16-32-64,
   batch 32, 32x32), LeNet-5 classic (its C5 is an XLA conv), and a style-transfer step
   (gradient of a VGG-19 loss with respect to a 128x128 image). ``jax`` is the same
   network in plain JAX (``lax.conv_general_dilated`` differentiated by JAX: XLA:CPU
   emits its backward convs as loop nests inside a loop, the behaviour fnnet's ``xla``
   lowering had before it wrote them in the canonical layout).

Every variant runs in interleaved rounds with alternating order (a short pause
between variants lets idle worker threads of the previous framework go to sleep); the
result is the median over rounds of the per-round ratio fnnet / other, printed with
the load average (the machine is shared: quote the load with the ratios). Run: ``python benchmarks/bench_conv.py [--rounds 7] [--skip-lenet] [--skip-resnet] [--scan [--skip-vgg]]``.
"""
from __future__ import annotations

import fnnet  # its malloc settings (fnnet.keep_host_memory) apply to every side
import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnnet import functional as F
from fnnet import losses, nn, optim, train

LR = 0.01


def timed_rounds(runs: dict, rounds: int, reps: dict, base: str = "fnnet") -> tuple[dict, dict]:
    """Median wall-clock ms per call of each zero-argument callable, and the median over
    rounds of ``base``'s time divided by each one's in the same round. Rounds
    interleave the variants and alternate their order, so a slow spell of the shared
    machine hits every variant of a round alike; a short pause between variants lets
    the idle worker threads of the previous framework go to sleep."""
    for fn in runs.values():  # compile / warm up
        fn()
        fn()
    times = {k: [] for k in runs}
    names = list(runs)
    for r in range(rounds):
        for k in (names if r % 2 == 0 else names[::-1]):
            fn = runs[k]
            time.sleep(0.3)
            t = time.perf_counter()
            for _ in range(reps[k]):
                fn()
            times[k].append((time.perf_counter() - t) / reps[k] * 1e3)
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: statistics.median(b / o for b, o in zip(times[base], v)) for k, v in times.items()}
    return medians, ratios


def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


# ---------------------------------------------------------------------------
# LeNet-5

def lenet_data(batch=128):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(batch, 32, 32, 1)).astype(np.float32),
            rng.integers(0, 10, size=batch).astype(np.int32))


def fnnet_lenet(x, y, lowering="auto", compiler_options=None):
    model = nn.serial(nn.conv(6, 5, impl=lowering), nn.relu, nn.max_pool(2, impl=lowering),
                      nn.conv(16, 5, impl=lowering), nn.relu, nn.max_pool(2, impl=lowering),
                      nn.flatten, nn.dense(120), nn.relu, nn.dense(84), nn.relu, nn.dense(10))
    x, y = jnp.asarray(x), jnp.asarray(y)
    params, state = model.init(jax.random.key(0), x)
    opt = optim.sgd(LR)
    step = train.make_train_step(model, losses.softmax_cross_entropy_with_integer_labels, opt,
                                 compiler_options=compiler_options)
    carry = [params, state, opt.init(params)]
    key = jax.random.key(1)
    jax.block_until_ready(step(*carry, x, y, key))

    def run():
        carry[0], carry[1], carry[2], loss = step(carry[0], carry[1], carry[2], x, y, key)
        loss.block_until_ready()
    return run


def jax_lenet(x, y):
    keys = jax.random.split(jax.random.key(0), 5)
    shapes = {"c1": (5, 5, 1, 6), "c2": (5, 5, 6, 16), "d1": (400, 120), "d2": (120, 84), "d3": (84, 10)}
    params = {}
    for k, (name, s) in zip(keys, shapes.items()):
        params[name] = jax.random.normal(k, s) * np.sqrt(2 / np.prod(s[:-1]))
        params[name + "b"] = jnp.zeros(s[-1])
    dn = ("NHWC", "HWIO", "NHWC")

    def pool(h):
        return lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    def loss_fn(p, x, y):
        h = pool(jax.nn.relu(lax.conv_general_dilated(x, p["c1"], (1, 1), "VALID", dimension_numbers=dn)
                             + p["c1b"]))
        h = pool(jax.nn.relu(lax.conv_general_dilated(h, p["c2"], (1, 1), "VALID", dimension_numbers=dn)
                             + p["c2b"]))
        h = h.reshape(h.shape[0], -1)
        h = jax.nn.relu(h @ p["d1"] + p["d1b"])
        h = jax.nn.relu(h @ p["d2"] + p["d2b"])
        logp = jax.nn.log_softmax(h @ p["d3"] + p["d3b"])
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def step(p, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        return jax.tree.map(lambda a, b: a - LR * b, p, g), loss

    x, y = jnp.asarray(x), jnp.asarray(y)
    carry = [params]

    def run():
        carry[0], loss = step(carry[0], x, y)
        loss.block_until_ready()
    return run


def torch_lenet(x, y):
    import torch
    torch.manual_seed(0)
    t = torch.nn
    model = t.Sequential(t.Conv2d(1, 6, 5), t.ReLU(), t.MaxPool2d(2), t.Conv2d(6, 16, 5), t.ReLU(),
                         t.MaxPool2d(2), t.Flatten(), t.Linear(400, 120), t.ReLU(), t.Linear(120, 84),
                         t.ReLU(), t.Linear(84, 10))
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
    yt = torch.tensor(y).long()

    def run():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    return run


# ---------------------------------------------------------------------------
# ResNet-18 with fnnet's functional kernels

STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))


def resnet18_params(key, num_classes=1000):
    """He-normal conv kernels (HWIO), BN scale 1 / bias 0, dense (in, out)."""
    counter = iter(range(1000))

    def conv(f, cin, cout):
        return jax.random.normal(jax.random.fold_in(key, next(counter)), (f, f, cin, cout)) \
            * np.sqrt(2 / (f * f * cin))

    def bn(c):
        return {"scale": jnp.ones(c), "bias": jnp.zeros(c)}

    p = {"stem": conv(7, 3, 64), "stem_bn": bn(64), "blocks": []}
    cin = 64
    for cout, stride in STAGES:
        for b in range(2):
            s = stride if b == 0 else 1
            blk = {"c1": conv(3, cin, cout), "bn1": bn(cout), "c2": conv(3, cout, cout), "bn2": bn(cout)}
            if s != 1 or cin != cout:
                blk["proj"] = conv(1, cin, cout)
                blk["proj_bn"] = bn(cout)
            p["blocks"].append(blk)
            cin = cout
    p["fc"] = jax.random.normal(jax.random.fold_in(key, 999), (512, num_classes)) * np.sqrt(1 / 512)
    p["fc_b"] = jnp.zeros(num_classes)
    return p


def _bn(x, p, eps=1e-5):
    """Training-mode batch norm over (N, H, W) (batch statistics)."""
    mean = jnp.mean(x, axis=(0, 1, 2))
    var = jnp.mean(jnp.square(x - mean.reshape(1, 1, 1, -1)), axis=(0, 1, 2))
    inv = (p["scale"] * lax.rsqrt(var + eps)).reshape(1, 1, 1, -1)
    return (x - mean.reshape(1, 1, 1, -1)) * inv + p["bias"].reshape(1, 1, 1, -1)


def resnet18_apply(p, x, impl="auto"):
    h = jax.nn.relu(_bn(F.conv(x, p["stem"], stride=2, padding=3, impl=impl), p["stem_bn"]))
    h = F.max_pool(h, 3, 2, 1, impl=impl)
    i = 0
    for _, stride in STAGES:
        for b in range(2):
            blk = p["blocks"][i]
            s = stride if b == 0 else 1
            out = jax.nn.relu(_bn(F.conv(h, blk["c1"], stride=s, padding=1, impl=impl), blk["bn1"]))
            out = _bn(F.conv(out, blk["c2"], padding=1, impl=impl), blk["bn2"])
            short = _bn(F.conv(h, blk["proj"], stride=s, impl=impl), blk["proj_bn"]) if "proj" in blk else h
            h = jax.nn.relu(out + short)
            i += 1
    h = F.global_avg_pool(h)
    return F.dense(h, p["fc"], p["fc_b"])


def fnnet_resnet(x, y, lowering="auto"):
    params = resnet18_params(jax.random.key(0))
    x, y = jnp.asarray(x), jnp.asarray(y)

    def loss(p):
        return losses.softmax_cross_entropy_with_integer_labels(resnet18_apply(p, x, lowering), y)

    grad = jax.jit(jax.value_and_grad(loss))
    compiled = grad.lower(params).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) if cost else float("nan")

    def run():
        jax.block_until_ready(compiled(params))
    return run, flops


def torch_resnet(x, y):
    import torch
    t = torch.nn
    torch.manual_seed(0)

    class Block(t.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1, self.bn1 = t.Conv2d(cin, cout, 3, stride, 1, bias=False), t.BatchNorm2d(cout)
            self.c2, self.bn2 = t.Conv2d(cout, cout, 3, 1, 1, bias=False), t.BatchNorm2d(cout)
            self.proj = None
            if stride != 1 or cin != cout:
                self.proj = t.Sequential(t.Conv2d(cin, cout, 1, stride, bias=False), t.BatchNorm2d(cout))

        def forward(self, h):
            out = self.bn2(self.c2(torch.relu(self.bn1(self.c1(h)))))
            return torch.relu(out + (h if self.proj is None else self.proj(h)))

    layers = [t.Conv2d(3, 64, 7, 2, 3, bias=False), t.BatchNorm2d(64), t.ReLU(), t.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in STAGES:
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [t.AdaptiveAvgPool2d(1), t.Flatten(), t.Linear(512, 1000)]
    model = t.Sequential(*layers).train()
    xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
    yt = torch.tensor(y).long()

    def run():
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
    return run


def matmul_step(n=1024):
    """A jitted n x n x n float32 matmul (timed beside the models: the peak in the same
    conditions); returns ``(run, flops)``."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
    mm = jax.jit(lambda u, v: u @ v)

    def run():
        mm(a, a).block_until_ready()
    return run, 2.0 * n ** 3


# ---------------------------------------------------------------------------
# Train steps inside lax.scan

SCAN_STEPS = 10


def _plain_conv(x, k, padding):
    return lax.conv_general_dilated(x, k, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))


def small_cnn(impl):
    """3x3 convs 3-16-32-64 (SAME), ReLU, 2x2 max pools, global average, dense 10:
    ``(init params, loss(params, x, y))``; ``impl="plain"`` is plain JAX."""
    shapes = [(3, 3, 3, 16), (3, 3, 16, 32), (3, 3, 32, 64)]

    def init(key):
        p = {f"c{i}": jax.random.normal(jax.random.fold_in(key, i), s) * np.sqrt(2 / np.prod(s[:-1]))
             for i, s in enumerate(shapes)}
        p["d"] = jax.random.normal(jax.random.fold_in(key, 9), (64, 10)) * 0.1
        return p

    def loss(p, x, y):
        h = x
        for i in range(3):
            h = (_plain_conv(h, p[f"c{i}"], "SAME") if impl == "plain"
                 else F.conv(h, p[f"c{i}"], padding="SAME", impl=impl))
            h = jax.nn.relu(h)
            if i < 2:
                h = F.max_pool(h, 2)
        logits = jnp.mean(h, axis=(1, 2)) @ p["d"]
        return losses.softmax_cross_entropy_with_integer_labels(logits, y)
    return init, loss


def lenet_classic(impl):
    """LeNet-5 classic (C1 6@5x5, tanh, avg pool, C3 16@5x5, tanh, avg pool, C5 120@5x5,
    tanh, F6 84, 10)."""
    shapes = [(5, 5, 1, 6), (5, 5, 6, 16), (5, 5, 16, 120)]

    def init(key):
        p = {f"c{i}": jax.random.normal(jax.random.fold_in(key, i), s) * np.sqrt(1 / np.prod(s[:-1]))
             for i, s in enumerate(shapes)}
        p["f6"] = jax.random.normal(jax.random.fold_in(key, 7), (120, 84)) * np.sqrt(1 / 120)
        p["out"] = jax.random.normal(jax.random.fold_in(key, 8), (84, 10)) * np.sqrt(1 / 84)
        return p

    def loss(p, x, y):
        h = x
        for i in range(3):
            h = (_plain_conv(h, p[f"c{i}"], "VALID") if impl == "plain"
                 else F.conv(h, p[f"c{i}"], impl=impl))
            h = jnp.tanh(h)
            if i < 2:
                h = F.avg_pool(h, 2)
        h = jnp.tanh(h.reshape(h.shape[0], -1) @ p["f6"])
        return losses.softmax_cross_entropy_with_integer_labels(h @ p["out"], y)
    return init, loss


def sgd_runs(model, x, y, impl):
    """(one dispatch per step, SCAN_STEPS steps in one lax.scan) for a model's SGD step."""
    init, loss = model(impl)
    params = init(jax.random.key(0))
    x, y = jnp.asarray(x), jnp.asarray(y)

    def update(p):
        return jax.tree.map(lambda a, g: a - LR * g, p, jax.grad(loss)(p, x, y))

    return dispatch_and_scan_runs(update, params, SCAN_STEPS)


def dispatch_and_scan_runs(update, start, steps):
    """``(run_one, run_scan)``: ``steps`` calls of ``update`` from ``start``, one jitted
    dispatch each, or all of them in one jitted ``lax.scan``; each run continues from
    where its previous call stopped."""
    one = jax.jit(update)
    scanned = jax.jit(lambda p: lax.scan(lambda c, _: (update(c), None), p, None, length=steps)[0])
    carry = [start, start]

    def run_one():
        for _ in range(steps):
            carry[0] = one(carry[0])
        jax.block_until_ready(carry[0])

    def run_scan():
        carry[1] = scanned(carry[1])
        jax.block_until_ready(carry[1])
    return run_one, run_scan


def torch_runs(model_name, x, y):
    import torch
    t = torch.nn
    torch.manual_seed(0)
    if model_name == "small_cnn":
        net = t.Sequential(t.Conv2d(3, 16, 3, padding=1, bias=False), t.ReLU(), t.MaxPool2d(2),
                           t.Conv2d(16, 32, 3, padding=1, bias=False), t.ReLU(), t.MaxPool2d(2),
                           t.Conv2d(32, 64, 3, padding=1, bias=False), t.ReLU(), t.AdaptiveAvgPool2d(1),
                           t.Flatten(), t.Linear(64, 10, bias=False))
    else:
        net = t.Sequential(t.Conv2d(1, 6, 5, bias=False), t.Tanh(), t.AvgPool2d(2),
                           t.Conv2d(6, 16, 5, bias=False), t.Tanh(), t.AvgPool2d(2),
                           t.Conv2d(16, 120, 5, bias=False), t.Tanh(), t.Flatten(),
                           t.Linear(120, 84, bias=False), t.Tanh(), t.Linear(84, 10, bias=False))
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    xt = torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous()
    yt = torch.tensor(np.asarray(y)).long()

    def run():
        for _ in range(SCAN_STEPS):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt), yt).backward()
            opt.step()
    return run


VGG19 = (64, 64, "P", 128, 128, "P", 256, 256, 256, 256, "P", 512, 512, 512, 512, "P", 512, 512, 512, 512)


def vgg_style_runs(impl, size=128, steps=2):
    """A style-transfer step: the gradient of a squared-feature loss at conv5_1's ReLU with
    respect to the image, through VGG-19's convs (random weights) and 2x2 average pools;
    ``steps`` gradient steps on the image in one lax.scan, or one dispatch each."""
    key = jax.random.key(0)
    ks, cin = [], 3
    for i, c in enumerate(VGG19):
        if c != "P":
            ks.append(jax.random.normal(jax.random.fold_in(key, i), (3, 3, cin, c)) * np.sqrt(2 / (9 * cin)))
            cin = c

    def loss(img):
        h, j = img[None], 0
        for c in VGG19:
            if c == "P":
                h = F.avg_pool(h, 2)
                continue
            h = jax.nn.relu(_plain_conv(h, ks[j], "SAME") if impl == "plain"
                            else F.conv(h, ks[j], padding="SAME", impl=impl))
            j += 1
        return jnp.mean(h ** 2)

    def update(img):
        return img - 0.01 * jax.grad(loss)(img)

    img0 = jnp.asarray(np.random.default_rng(0).uniform(size=(size, size, 3)), jnp.float32)
    return dispatch_and_scan_runs(update, img0, steps)


def torch_vgg_style(size=128, steps=2):
    import torch
    t = torch.nn
    torch.manual_seed(0)
    layers, cin = [], 3
    for c in VGG19:
        if c == "P":
            layers.append(t.AvgPool2d(2))
        else:
            layers += [t.Conv2d(cin, c, 3, padding=1, bias=False), t.ReLU()]
            cin = c
    net = t.Sequential(*layers)
    for p in net.parameters():
        p.requires_grad_(False)
    img = torch.rand(1, 3, size, size)

    def run():
        nonlocal img
        for _ in range(steps):
            g = img.clone().requires_grad_(True)
            net(g).pow(2).mean().backward()
            img = (img - 0.01 * g.grad).detach()
    return run


def scan_section(rounds, have_torch, vgg=True):
    rng = np.random.default_rng(0)
    cases = {"small CNN (batch 32, 32x32x3)": ("small_cnn", small_cnn, rng.normal(size=(32, 32, 32, 3))),
             "LeNet-5 classic (batch 128, 32x32x1)": ("lenet", lenet_classic, rng.normal(size=(128, 32, 32, 1)))}
    for title, (tname, model, x) in cases.items():
        x = x.astype(np.float32)
        y = rng.integers(0, 10, size=x.shape[0]).astype(np.int32)
        runs = {}
        for impl in ("auto", "matmul", "plain"):
            one, scanned = sgd_runs(model, x, y, impl)
            name = {"auto": "fnnet", "matmul": "fnnet[matmul]", "plain": "jax"}[impl]
            runs[name + " scan"], runs[name + " 1/step"] = scanned, one
        if have_torch:
            runs["torch"] = torch_runs(tname, x, y)
        report(title + f", SGD step, {SCAN_STEPS} steps per call", runs, rounds, "fnnet scan", SCAN_STEPS)
    if not vgg:
        return
    runs = {}
    for impl in ("auto", "plain"):
        one, scanned = vgg_style_runs(impl)
        name = "fnnet" if impl == "auto" else "jax"
        runs[name + " scan"], runs[name + " 1/step"] = scanned, one
    if have_torch:
        runs["torch"] = torch_vgg_style()
    report("VGG-19 style step (image gradient, 128x128), 2 steps per call", runs, max(3, rounds // 2),
           "fnnet scan", 2)


def report(title, runs, rounds, base, steps):
    before = load_average()
    med, ratio = timed_rounds(runs, rounds, {k: 1 for k in runs}, base=base)
    print(f"\n{title}, {rounds} rounds (load average {before} before, {load_average()} after)")
    print(f"  median ms per step; ratio = median over rounds of ({base}) / variant")
    for k, v in med.items():
        print(f"  {k:16s} {v / steps:9.2f} ms   {base}/{k} = {ratio[k]:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--skip-lenet", action="store_true")
    parser.add_argument("--scan", action="store_true", help="only the train steps inside lax.scan")
    parser.add_argument("--skip-vgg", action="store_true", help="with --scan: no VGG-19 style step")
    args = parser.parse_args()
    try:
        import torch
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"jax {jax.__version__}, backend {jax.default_backend()}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if have_torch else "")
          + f"; host memory kept: {fnnet.HOST_MEMORY_KEPT}")

    if args.scan:
        scan_section(args.rounds, have_torch, vgg=not args.skip_vgg)
        return
    if not args.skip_lenet:
        lenet(args.rounds, have_torch)
    if not args.skip_resnet:
        resnet(args.rounds, have_torch)


def lenet(rounds, have_torch):
    x, y = lenet_data()
    runs = {"fnnet": fnnet_lenet(x, y), "fnnet[xla]": fnnet_lenet(x, y, "xla"),
            "fnnet[matmul]": fnnet_lenet(x, y, "matmul"),
            "fnnet[cpu_opts]": fnnet_lenet(x, y, compiler_options=F.cpu_compiler_options()),
            "jax": jax_lenet(x, y)}
    if have_torch:
        runs["torch"] = torch_lenet(x, y)
    before = load_average()
    med, ratio = timed_rounds(runs, rounds, {k: 10 for k in runs})
    print(f"\nLeNet-5 train step, batch 128, {rounds} rounds x 10 steps (load average {before} "
          f"before, {load_average()} after)")
    print("  median ms per step; ratio = median over rounds of fnnet / variant")
    for k, v in med.items():
        print(f"  {k:14s} {v:8.2f} ms   fnnet/{k} = {ratio[k]:.2f}")
    if "torch" in med:
        print(f"  fnnet[cpu_opts]/torch = {med['fnnet[cpu_opts]'] / med['torch']:.2f} (ratio of medians)")


def resnet(rounds, have_torch):
    xr = np.random.default_rng(1).normal(size=(8, 224, 224, 3)).astype(np.float32)
    yr = np.random.default_rng(2).integers(0, 1000, size=8).astype(np.int32)
    fn_auto, flops = fnnet_resnet(xr, yr)
    fn_xla, _ = fnnet_resnet(xr, yr, "xla")
    runs = {"fnnet": fn_auto, "fnnet[xla]": fn_xla}
    if have_torch:
        runs["torch"] = torch_resnet(xr, yr)
    mm, mm_flops = matmul_step()
    runs["matmul 1024^3"] = mm
    rounds = max(3, rounds // 2)
    before = load_average()
    med, ratio = timed_rounds(runs, rounds, {k: 20 if k.startswith("matmul") else 1 for k in runs})
    peak = mm_flops / (med.pop("matmul 1024^3") / 1e3) / 1e9
    print(f"\nResNet-18 forward+backward, batch 8, 224x224, {rounds} rounds (load average {before} "
          f"before, {load_average()} after)")
    print("  median ms; ratio = median over rounds of fnnet / variant")
    for k, v in med.items():
        print(f"  {k:14s} {v:9.1f} ms   fnnet/{k} = {ratio[k]:.2f}")
    achieved = flops / (med["fnnet"] / 1e3) / 1e9
    print(f"  XLA flop count {flops / 1e9:.1f} GFLOP -> fnnet {achieved:.1f} GFLOP/s; float32 matmul "
          f"peak measured in the same rounds {peak:.1f} GFLOP/s ({achieved / peak:.0%} of it)")


if __name__ == "__main__":
    main()
