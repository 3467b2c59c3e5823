"""attention_maps: where each head of the addition GPT looks.

Trains the ``transformer_addition`` GPT (through that experiment's ``train_model``, with
the settings below) and draws, for one held-out sum, the attention weights of every
head of every layer: a ``layers x heads`` grid of ``9 x 9`` maps, row ``t`` the weights
that the query at position ``t`` gives the keys ``s <= t``.

The weights come from the kernel, ``fnnet.functional.dot_product_attention(...,
return_weights=True)``: the attention Module returns only its output, so the forward
pass is written out here over the GPT's params (embeddings, then per block
``LN -> fused qkv -> attention -> out`` and ``LN -> GELU MLP``, the final norm and the
tied output layer) and checked against ``model.apply``: the result's
``max_logit_difference`` is the largest gap between the two passes' logits.

Measures, over all held-out sums, each head's share of attention that the query
predicting sum digit ``c_j`` (the ones digit first) puts on the two addend digits of
the same place, ``a_j`` and ``b_j``: ``place_attention[layer][head]`` (a uniform causal
head would put about 2/7 there).

Full run (seed 0, the addition settings with 1,500 steps): 100% exact on the 1,000
held-out sums; in the first layer heads 2, 1 and 3 put 94.8%, 90.4% and 89.8% of their
attention on the two digits of the place being summed (head 0 49%), the second layer's
heads 33-52%; the written-out pass equals ``model.apply`` to 3e-5 in the logits; 88 s
on 2 shared CPU cores at a load average of about 10. (An earlier run, before the
blocks' layer norm had its derivative written out, trained heads 1 and 3 to 99.3% and
99.0%, head 0 88%, head 2 41%: float32 rounding of the gradients moves the trajectory,
and which heads specialise with it.)
"""
from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import functional as F
from fnnet.functional.embedding import attend, embed
from fnnet.train.config import check_config, require


CPU_SECONDS = 88  # a default run on 2 CPU cores (docs/experiments.md); `fnnet list` shows it


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0                          # seed of the addition run (split, initialisation, order)
    digits: int = 3                        # digits of each addend
    layers: int = 2                        # transformer blocks
    heads: int = 4                         # attention heads per block
    embed_dim: int = 64                    # width of the residual stream
    batch_size: int = 128                  # sums per step
    steps: int = 1500                      # optimizer steps (a multiple of eval_every)
    eval_every: int = 500                  # steps per compiled block
    learning_rate: float = 2e-3            # peak AdamW learning rate, cosine-decayed to a tenth
    warmup: int = 100                      # linear warm-up steps
    heldout: int = 1000                    # held-out sums (the maps' averages run over them)
    example: int = 0                       # which held-out sum the figure shows

    def __post_init__(self):
        check_config(self, positive=("digits", "layers", "heads", "embed_dim", "batch_size", "steps",
                                     "eval_every", "heldout", "learning_rate"), nonnegative=("example", "warmup"))
        require(self, "warmup", self.warmup < self.steps, f"< steps ({self.steps})")
        require(self, "example", self.example < self.heldout, f"< heldout ({self.heldout})")


def _addition():
    """The sibling experiment ``transformer_addition``, loaded from this folder."""
    from fnnet.cli import load_experiment
    return load_experiment("transformer_addition", os.path.dirname(os.path.abspath(__file__)))


def attention_weights(model, params, tokens):
    """``(logits (B, T, V), weights (L, B, H, T, T))``: the GPT's full causal pass written out
    over its params, each block's weights from ``dot_product_attention(return_weights=True)``."""
    c = model.config
    table = params["token_embedding"]["embedding"]
    t = tokens.shape[1]
    h = embed(tokens, table) + params["position_embedding"]["embedding"][None, :t]

    def dense(x, p):
        return F.dense(x, p["kernel"], p.get("bias"))

    def norm(x, p):
        return F.layer_norm(x, p["scale"], p.get("bias"))

    weights = []
    for i in range(c.num_layers):
        p = params["blocks"][str(i)]
        qkv = dense(norm(h, p["norm1"]), p["attention"]["qkv"])
        q, k, v = jnp.split(qkv.reshape(qkv.shape[:2] + (3 * c.num_heads, c.head_dim)), 3, axis=2)
        out, w = F.dot_product_attention(q, k, v, is_causal=True, return_weights=True)
        weights.append(w)
        h = h + dense(out.reshape(h.shape), p["attention"]["out"])
        h = h + dense(F.gelu(dense(norm(h, p["norm2"]), p["mlp"]["hidden"])), p["mlp"]["output"])
    logits = attend(norm(h, params["norm"]), table)
    return logits, jnp.stack(weights)


def place_attention(weights, digits: int):
    """Mean share ``(L, H)`` of attention that the query predicting sum digit ``c_j``
    (position ``2 d - 1 + j``, ``j < d``) puts on ``a_j`` and ``b_j`` (positions
    ``d - 1 - j`` and ``2 d - 1 - j``)."""
    shares = []
    for j in range(digits):
        q = 2 * digits - 1 + j
        shares.append(weights[:, :, :, q, digits - 1 - j] + weights[:, :, :, q, 2 * digits - 1 - j])
    return jnp.mean(jnp.stack(shares), axis=(0, 2))


def run(config: Config) -> dict:
    ta = _addition()
    add_config = ta.Config(seed=config.seed, digits=config.digits, heldout=config.heldout, layers=config.layers,
                           heads=config.heads, embed_dim=config.embed_dim, batch_size=config.batch_size,
                           steps=config.steps, eval_every=config.eval_every, learning_rate=config.learning_rate,
                           warmup=config.warmup)
    model, params, state, _, data = ta.train_model(add_config)
    x_held = jnp.asarray(data["x_heldout"])
    logits, weights = jax.jit(attention_weights, static_argnums=0)(model, params, x_held)
    reference, _ = model.apply(params, state, x_held)
    exact, _ = ta.exact_match(model, params, state, data["x_heldout"], data["y_heldout"], config.digits)
    pair = int(data["heldout_pairs"][config.example])
    places = place_attention(weights, config.digits)
    return {"heldout_exact_match": exact, "max_logit_difference": float(jnp.max(jnp.abs(logits - reference))),
            "place_attention": np.asarray(places).tolist(),
            "best_place_attention": float(jnp.max(places)),
            "example": {"a": pair // 10 ** config.digits, "b": pair % 10 ** config.digits,
                        "tokens": data["x_heldout"][config.example].tolist(),
                        "weights": np.asarray(weights[:, config.example]).tolist()},
            "digits": config.digits}


def token_labels(digits: int) -> list:
    """``a2 a1 a0 b2 b1 b0 c0 c1 c2`` for 3 digits: the place of every input position."""
    a = [f"a{i}" for i in range(digits - 1, -1, -1)]
    b = [f"b{i}" for i in range(digits - 1, -1, -1)]
    return a + b + [f"c{i}" for i in range(digits)]


def plot(result: dict, out_dir: str) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    w = np.asarray(result["example"]["weights"])          # (L, H, T, T)
    layers, heads = w.shape[:2]
    ticks = [f"{lab}={tok}" for lab, tok in zip(token_labels(result["digits"]), result["example"]["tokens"])]
    fig, axes = plt.subplots(layers, heads, figsize=(2.6 * heads, 2.6 * layers), squeeze=False)
    for i in range(layers):
        for h in range(heads):
            ax = axes[i][h]
            ax.imshow(w[i, h], vmin=0, vmax=1, cmap="viridis")
            ax.set_title(f"layer {i}, head {h}: {result['place_attention'][i][h]:.2f}", fontsize=8)
            ax.set_xticks(range(len(ticks)), ticks, rotation=90, fontsize=6)
            ax.set_yticks(range(len(ticks)), ticks, fontsize=6)
    ex = result["example"]
    fig.suptitle(f"{ex['a']} + {ex['b']} = {ex['a'] + ex['b']}: rows are queries, columns keys;\n"
                 "titles: mean share on the same place's digits", fontsize=9)
    fig.tight_layout()
    path = os.path.join(out_dir, "attention_maps.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


if __name__ == "__main__":
    res = run(Config())
    print({k: v for k, v in res.items() if k != "example"})
