"""GPT train step: fnnet against the same model in plain JAX + optax, Flax and PyTorch,
side by side in one process; and fnnet's cached against uncached generation.

The model is nanoGPT's CPU "baby GPT" (Karpathy, ``config/train_shakespeare_char.py``
with the CPU settings of its README): 4 pre-LN blocks, 4 heads, embedding 128, context
64, batch 12, vocabulary 65, GELU MLP of width 512, tied input/output embeddings,
dropout 0; AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1 on the matrices only)
after clipping the global gradient norm to 1.0. One step is forward, backward, clip and
AdamW on one batch of Tiny Shakespeare windows (the same batch every step).

- fnnet: ``fnnet.models.gpt`` + ``fnnet.optim`` + ``fnnet.train.make_train_step``.
- plain JAX: the same network written here over a dict of weights, ``jax.value_and_grad``
  and optax (``clip_by_global_norm`` + ``adamw``). Its GELU is written with ``erf`` as
  fnnet's and PyTorch's; a second row uses ``jax.nn.gelu(approximate=False)``, the same
  function through ``erfc``, whose XLA CPU code is slower (see benchmarks/RESULTS.md).
- Flax: the same network in ``flax.linen`` with optax (GELU written with ``erf``).
- PyTorch: nanoGPT's ``model.py`` structure (``CausalSelfAttention`` with
  ``scaled_dot_product_attention(is_causal=True)``, ``MLP``, ``Block``) written in plain
  torch, eager, ``torch.set_num_threads(2)``, ``torch.optim.AdamW`` and
  ``clip_grad_norm_``.

Every side runs ``REPS`` steps per round; rounds are interleaved and their order
alternates; the result is the median over rounds of the per-round ratio
fnnet time / other time (below 1: fnnet is faster), with its quartiles. Beside the
wall time: XLA's count of the bytes each compiled step reads and writes, and the
process CPU time per step (every thread), which a shared machine inflates less than
the wall time (PyTorch's includes its threads' spin-waiting).

Generation: a GPT with context 256 produces ``GEN_TOKENS`` tokens after a one-token
prompt, greedily, (a) with the key-value cache (``fnnet.models.gpt``'s
``decode_step``: one position per step against the cache) and (b) without it (every
step recomputes the full causal pass over the 256-position window and reads the logits
at the newest position). Both loops are one compiled ``lax.scan``; reported in tokens
per second and as the median per-round ratio of the two rates.
"""
from __future__ import annotations

import fnnet  # its malloc settings (fnnet.keep_host_memory) apply to every side
import math
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

LAYERS, HEADS, EMBED, CONTEXT, BATCH, VOCAB = 4, 4, 128, 64, 12, 65
LR, BETAS, WEIGHT_DECAY, CLIP, EPS = 1e-3, (0.9, 0.99), 0.1, 1.0, 1e-8
USE_BIAS = False                 # nanoGPT's train.py default (bias = False), kept for the baby GPT
ROUNDS, REPS = 9, 5
GEN_CONTEXT, GEN_TOKENS, GEN_ROUNDS = 256, 200, 5


def batch_of_windows(seed: int = 0):
    """``BATCH`` random windows of Tiny Shakespeare: inputs and next-character targets."""
    from fnnet.data import load_tiny_shakespeare
    text = load_tiny_shakespeare()
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text[:100_000]], np.int32)
    starts = np.random.default_rng(seed).integers(0, len(ids) - CONTEXT - 1, BATCH)
    x = np.stack([ids[s:s + CONTEXT] for s in starts])
    y = np.stack([ids[s + 1:s + CONTEXT + 1] for s in starts])
    return x, y


def decay_mask(params):
    """True on the matrices (ndim >= 2: projections and embeddings), as nanoGPT's optimizer groups."""
    return jax.tree.map(lambda a: a.ndim >= 2, params)


def optax_adamw():
    return optax.chain(optax.clip_by_global_norm(CLIP),
                       optax.adamw(LR, b1=BETAS[0], b2=BETAS[1], eps=EPS, weight_decay=WEIGHT_DECAY,
                                   mask=decay_mask))


# ----------------------------------------------------------------------------- plain JAX

def plain_init(key, layers=LAYERS, embed=EMBED, context=CONTEXT, vocab=VOCAB, bias=USE_BIAS):
    """nanoGPT's initialisation: N(0, 0.02^2) everywhere, 0.02 / sqrt(2 L) for the two
    output projections of each block, zero biases, unit layer-norm scales."""
    keys = iter(jax.random.split(key, 2 + 4 * layers))
    normal = lambda shape, std=0.02: std * jax.random.normal(next(keys), shape)  # noqa: E731
    proj_std = 0.02 / math.sqrt(2 * layers)

    def dense(n_in, n_out, std=0.02):
        p = {"w": normal((n_in, n_out), std)}
        if bias:
            p["b"] = jnp.zeros(n_out)
        return p

    def norm():
        p = {"scale": jnp.ones(embed)}
        if bias:
            p["b"] = jnp.zeros(embed)
        return p

    blocks = [{"ln1": norm(), "qkv": dense(embed, 3 * embed), "proj": dense(embed, embed, proj_std),
               "ln2": norm(), "fc": dense(embed, 4 * embed), "fc_proj": dense(4 * embed, embed, proj_std)}
              for _ in range(layers)]
    return {"wte": normal((vocab, embed)), "wpe": normal((context, embed)), "blocks": blocks,
            "ln_f": norm()}


def _ln(x, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) * jax.lax.rsqrt(var + 1e-5) * p["scale"]
    return y + p["b"] if "b" in p else y


def _dense(x, p):
    y = x @ p["w"]
    return y + p["b"] if "b" in p else y


def gelu_erf(x):
    """The exact GELU written with ``erf``: ``x/2 (1 + erf(x / sqrt 2))`` (PyTorch's ``nn.GELU()``)."""
    return 0.5 * x * (1.0 + jax.lax.erf(x * np.float32(math.sqrt(0.5))))


def gelu_jax_nn(x):
    """``jax.nn.gelu(x, approximate=False)``: the same function through ``erfc``."""
    return jax.nn.gelu(x, approximate=False)


def plain_forward(params, idx, heads=HEADS, gelu=gelu_erf):
    """Logits ``(B, T, V)`` of nanoGPT's GPT on token ids ``idx`` ``(B, T)``."""
    b, t = idx.shape
    c = params["wte"].shape[1]
    d = c // heads
    x = params["wte"][idx] + params["wpe"][:t][None]
    causal = jnp.tril(jnp.ones((t, t), bool))
    for blk in params["blocks"]:
        q, k, v = jnp.split(_dense(_ln(x, blk["ln1"]), blk["qkv"]), 3, axis=-1)
        q, k, v = (a.reshape(b, t, heads, d) for a in (q, k, v))
        att = jnp.einsum("bthd,bshd->bhts", q, k) / math.sqrt(d)
        att = jax.nn.softmax(jnp.where(causal, att, -jnp.inf), axis=-1)
        y = jnp.einsum("bhts,bshd->bthd", att, v).reshape(b, t, c)
        x = x + _dense(y, blk["proj"])
        h = gelu(_dense(_ln(x, blk["ln2"]), blk["fc"]))
        x = x + _dense(h, blk["fc_proj"])
    return _ln(x, params["ln_f"]) @ params["wte"].T


def plain_loss(params, x, y, gelu=gelu_erf):
    return optax.softmax_cross_entropy_with_integer_labels(plain_forward(params, x, gelu=gelu), y).mean()


def plain_step_fn(gelu=gelu_erf):
    opt = optax_adamw()

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(plain_loss)(params, x, y, gelu)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step, opt


def plain_jax_runner(x, y, gelu=gelu_erf):
    params = plain_init(jax.random.key(0))
    step, opt = plain_step_fn(gelu)
    carry = [params, opt.init(params)]
    x, y = jnp.asarray(x), jnp.asarray(y)

    def run():
        carry[0], carry[1], loss = step(carry[0], carry[1], x, y)
        return loss
    run.compiled = step.lower(*carry, x, y).compile()
    run.params = sum(a.size for a in jax.tree.leaves(params))
    return run


# ----------------------------------------------------------------------------- Flax

def flax_runner(x, y):
    import flax.linen as nn

    init = nn.initializers.normal(0.02)
    proj_init = nn.initializers.normal(0.02 / math.sqrt(2 * LAYERS))

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            b, t, c = x.shape
            d = c // HEADS
            h = nn.LayerNorm(epsilon=1e-5, use_bias=USE_BIAS)(x)
            q, k, v = jnp.split(nn.Dense(3 * c, use_bias=USE_BIAS, kernel_init=init)(h), 3, axis=-1)
            q, k, v = (a.reshape(b, t, HEADS, d) for a in (q, k, v))
            att = jnp.einsum("bthd,bshd->bhts", q, k) / math.sqrt(d)
            att = jax.nn.softmax(jnp.where(jnp.tril(jnp.ones((t, t), bool)), att, -jnp.inf), axis=-1)
            y = jnp.einsum("bhts,bshd->bthd", att, v).reshape(b, t, c)
            x = x + nn.Dense(c, use_bias=USE_BIAS, kernel_init=proj_init)(y)
            h = nn.LayerNorm(epsilon=1e-5, use_bias=USE_BIAS)(x)
            h = gelu_erf(nn.Dense(4 * c, use_bias=USE_BIAS, kernel_init=init)(h))
            return x + nn.Dense(c, use_bias=USE_BIAS, kernel_init=proj_init)(h)

    class GPT(nn.Module):
        @nn.compact
        def __call__(self, idx):
            wte = nn.Embed(VOCAB, EMBED, embedding_init=init)
            wpe = self.param("wpe", init, (CONTEXT, EMBED))
            h = wte(idx) + wpe[:idx.shape[1]][None]
            for _ in range(LAYERS):
                h = Block()(h)
            return wte.attend(nn.LayerNorm(epsilon=1e-5, use_bias=USE_BIAS)(h))

    model = GPT()
    x, y = jnp.asarray(x), jnp.asarray(y)
    params = model.init(jax.random.key(0), x)["params"]
    opt = optax_adamw()

    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, x), y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    carry = [params, opt.init(params)]

    def run():
        carry[0], carry[1], loss = step(carry[0], carry[1], x, y)
        return loss
    run.compiled = step.lower(*carry, x, y).compile()
    run.params = sum(a.size for a in jax.tree.leaves(params))
    return run


# ----------------------------------------------------------------------------- PyTorch

def torch_runner(x, y):
    import torch
    from torch import nn
    from torch.nn import functional as TF

    torch.set_num_threads(2)
    torch.manual_seed(0)

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(EMBED, 3 * EMBED, bias=USE_BIAS)
            self.c_proj = nn.Linear(EMBED, EMBED, bias=USE_BIAS)

        def forward(self, x):
            b, t, c = x.size()
            q, k, v = self.c_attn(x).split(EMBED, dim=2)
            q, k, v = (a.view(b, t, HEADS, c // HEADS).transpose(1, 2) for a in (q, k, v))
            y = TF.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(EMBED, 4 * EMBED, bias=USE_BIAS)
            self.gelu = nn.GELU()
            self.c_proj = nn.Linear(4 * EMBED, EMBED, bias=USE_BIAS)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(EMBED, bias=USE_BIAS)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(EMBED, bias=USE_BIAS)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(VOCAB, EMBED)
            self.wpe = nn.Embedding(CONTEXT, EMBED)
            self.h = nn.ModuleList([Block() for _ in range(LAYERS)])
            self.ln_f = nn.LayerNorm(EMBED, bias=USE_BIAS)
            self.lm_head = nn.Linear(EMBED, VOCAB, bias=False)
            self.wte.weight = self.lm_head.weight          # weight tying, as nanoGPT
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    std = 0.02 / math.sqrt(2 * LAYERS) if name.endswith("c_proj.weight") else 0.02
                    torch.nn.init.normal_(p, 0.0, std)

        def forward(self, idx, targets):
            pos = torch.arange(idx.size(1))
            h = self.wte(idx) + self.wpe(pos)
            for block in self.h:
                h = block(h)
            logits = self.lm_head(self.ln_f(h))
            return TF.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    model = GPT()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=BETAS, eps=EPS)
    xt, yt = torch.from_numpy(np.asarray(x)).long(), torch.from_numpy(np.asarray(y)).long()

    def run():
        loss = model(xt, yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        return loss.detach()
    run.params = sum(p.numel() for p in model.parameters())
    return run


# ----------------------------------------------------------------------------- fnnet

def fnnet_model(context=CONTEXT):
    from fnnet.models.gpt import gpt
    return gpt(vocab_size=VOCAB, num_layers=LAYERS, num_heads=HEADS, embed_dim=EMBED,
                   context_length=context, dropout_rate=0.0, use_bias=USE_BIAS)


def fnnet_runner(x, y):
    from fnnet import losses, optim, train

    model = fnnet_model()
    x, y = jnp.asarray(x), jnp.asarray(y)
    params, state = model.init(jax.random.key(0), x)
    opt = optim.chain(optim.clip_by_global_norm(CLIP),
                      optim.adamw(LR, b1=BETAS[0], b2=BETAS[1], eps=EPS, weight_decay=WEIGHT_DECAY,
                                  mask=decay_mask))
    step = train.make_train_step(model, losses.softmax_cross_entropy_with_integer_labels, opt)
    carry = [params, state, opt.init(params)]
    key = jax.random.key(1)

    def run():
        carry[0], carry[1], carry[2], loss = step(carry[0], carry[1], carry[2], x, y, key)
        return loss
    run.compiled = step.lower(*carry, x, y, key).compile()
    run.params = sum(a.size for a in jax.tree.leaves(params))
    run.step, run.args = step, (*carry, x, y, key)
    return run


# ----------------------------------------------------------------------------- measuring

def bytes_accessed(run) -> float:
    """XLA's count of the bytes a compiled step reads and writes (NaN for PyTorch)."""
    compiled = getattr(run, "compiled", None)
    if compiled is None:
        return float("nan")
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("bytes accessed", float("nan")))


def time_round(run, reps: int) -> tuple[float, float]:
    """Wall and process CPU seconds per call (CPU: every thread of this process)."""
    jax.block_until_ready(run())       # the first call after another framework's round
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(reps):
        out = run()
    jax.block_until_ready(out) if not hasattr(out, "item") or isinstance(out, jax.Array) else out.item()
    return (time.perf_counter() - start) / reps, (time.process_time() - cpu) / reps


def interleaved(runners: dict, rounds: int, reps: int, cpu: dict | None = None) -> dict:
    """Per-round seconds per step of every runner, the order alternating between rounds
    (and the CPU seconds per step in ``cpu``, if given)."""
    times = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            wall, used = time_round(runners[name], reps)
            times[name].append(wall)
            if cpu is not None:
                cpu.setdefault(name, []).append(used)
    return times


def ratio(times, a, b) -> float:
    return statistics.median(ta / tb for ta, tb in zip(times[a], times[b]))


def train_step_table(rounds=ROUNDS, reps=REPS):
    x, y = batch_of_windows()
    runners = {}
    for name, make in (("fnnet", fnnet_runner), ("plain JAX", plain_jax_runner),
                       ("plain JAX, jax.nn.gelu", lambda x, y: plain_jax_runner(x, y, gelu_jax_nn)),
                       ("Flax", flax_runner), ("PyTorch", torch_runner)):
        try:
            runners[name] = make(x, y)
        except ImportError as e:  # an optional framework that is not installed
            print(f"skipping {name}: {e}")
    for run in runners.values():   # warm-up (compiles, torch's allocator)
        for _ in range(3):
            run()
    load = os.getloadavg()[0]
    cpu = {}
    times = interleaved(runners, rounds, reps, cpu)
    print(f"\nGPT train step, baby GPT ({LAYERS} layers, {HEADS} heads, embedding {EMBED}, context "
          f"{CONTEXT}, batch {BATCH}); {rounds} interleaved rounds x {reps} steps; load average "
          f"{load:.1f} before, {os.getloadavg()[0]:.1f} after; host memory kept: {fnnet.HOST_MEMORY_KEPT}")
    print(f"{'framework':<22} {'params':>9} {'median ms':>10} {'MB read':>8} {'fnnet / this':>13} "
          f"{'quartiles':>13} {'CPU ms':>7} {'CPU ratio':>9}")
    for name, run in runners.items():
        per_round = sorted(a / b for a, b in zip(times["fnnet"], times[name])) if "fnnet" in times else [0.0]
        q1, q3 = per_round[len(per_round) // 4], per_round[(3 * len(per_round)) // 4]
        print(f"{name:<22} {getattr(run, 'params', 0):>9,} {1e3 * statistics.median(times[name]):>10.2f} "
              f"{bytes_accessed(run) / 1e6:>8.0f} {statistics.median(per_round):>13.3f} "
              f"{q1:>6.3f}-{q3:<6.3f} {1e3 * statistics.median(cpu[name]):>7.1f} "
              f"{statistics.median(cpu['fnnet']) / statistics.median(cpu[name]):>9.3f}")
    return runners, times


# ----------------------------------------------------------------------------- generation

def generation_table(rounds=GEN_ROUNDS, tokens=GEN_TOKENS):
    """Tokens per second of greedy generation with and without the key-value cache."""
    from fnnet.models.gpt import generate

    model = fnnet_model(context=GEN_CONTEXT)
    spec = jnp.zeros((1, GEN_CONTEXT), jnp.int32)
    params, state = model.init(jax.random.key(0), spec)
    prompt = jnp.zeros((1, 1), jnp.int32)

    @jax.jit
    def cached(params):
        return generate(model, params, state, prompt, tokens, key=jax.random.key(1), temperature=0.0)

    @jax.jit
    def uncached(params):
        window = jnp.zeros((1, GEN_CONTEXT), jnp.int32)

        def body(window, t):    # t: the position of the newest token
            logits, _ = model.apply(params, state, window)
            nxt = jnp.argmax(logits[0, t]).astype(jnp.int32)
            return window.at[0, t + 1].set(nxt), nxt

        _, out = jax.lax.scan(body, window, jnp.arange(tokens))
        return out

    a = np.asarray(cached(params)).reshape(-1)[-tokens:]
    b = np.asarray(uncached(params))
    agree = float(np.mean(a == b))
    runners = {"cached": lambda: cached(params), "uncached": lambda: uncached(params)}
    times = interleaved(runners, rounds, 1)
    print(f"\nGreedy generation of {tokens} tokens, context {GEN_CONTEXT}; {rounds} interleaved rounds; "
          f"the two agree on {100 * agree:.0f}% of the tokens")
    for name in runners:
        print(f"{name:<10} {tokens / statistics.median(times[name]):>10.0f} tokens/s")
    print(f"cached / uncached speed: {ratio(times, 'uncached', 'cached'):.1f}x (median per-round)")
    return times


if __name__ == "__main__":
    train_step_table()
    generation_table()
