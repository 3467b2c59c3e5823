"""Intermediate outputs of a chain of layers, by layer name.

A feed-forward model ``nn.serial(*layers)`` keeps its children's params under
``"0"``, ``"1"``, ...; given the same ``layers`` list, :func:`layer_outputs` runs the
chain over those params and returns the outputs of the layers asked for (a style
transfer's content and style layers, a ConvNet's activation maps), stopping after the
deepest one; :func:`run_layers` runs a slice of the chain (the part above a Grad-CAM
layer). Layers are named by their position key (``"0"``, ``"3"``) or by the names
given in ``layer_names`` (``fnnet.models.vgg.vgg_layer_names()``: ``"conv4_2"``).

Params may hold more entries than the layers use (a full VGG-19's classifier when
only its conv part is listed): they are ignored.

Imports: fnnet.nn.
"""
from __future__ import annotations

from typing import Sequence

from fnnet import nn

__all__ = ["layer_index", "layer_outputs", "run_layers"]


def _check_layers(where: str, layers, layer_names) -> None:
    if isinstance(layers, nn.Module) or not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError(f"{where}: expected the list of layers that nn.serial(*layers) chains, got "
                        f"{type(layers).__name__}" + (" (a Module hides its children: pass its layer list, e.g. "
                                                      "fnnet.models.vgg.vgg_layers())"
                                                      if isinstance(layers, nn.Module) else ""))
    for i, m in enumerate(layers):
        if not isinstance(m, nn.Module):
            raise TypeError(f"{where}: layer {i} is {type(m).__name__}, expected a Module")
    if layer_names is not None and len(layer_names) != len(layers):
        raise ValueError(f"{where}: expected {len(layers)} layer_names (one per layer), got {len(layer_names)}")


def layer_index(layers: Sequence[nn.Module], name: str, *, layer_names: Sequence[str] | None = None,
                where: str = "layer_index") -> int:
    """The position of layer ``name`` (a position key ``"3"`` or one of ``layer_names``).

    Raises:
      KeyError: no layer has that name; the message lists the names there are.
    """
    _check_layers(where, layers, layer_names)
    if layer_names is not None and name in layer_names:
        return list(layer_names).index(name)
    if isinstance(name, str) and name.isdigit() and int(name) < len(layers) and str(int(name)) == name:
        return int(name)
    available = list(layer_names) if layer_names is not None else [str(i) for i in range(len(layers))]
    raise KeyError(f"{where}: no layer named {name!r}; the layers are {available}")


def run_layers(layers: Sequence[nn.Module], params, state, x, start: int = 0, stop: int | None = None, *,
               key=None, train: bool = False):
    """``layers[start:stop]`` applied in order to ``x``, each with its params and state
    ``params[str(i)]``, ``state[str(i)]`` (child ``i`` of ``nn.serial(*layers)``, whose
    key it also gets: ``fold_in(key, i)``).

    Returns:
      ``(y, new_state)`` where ``new_state`` holds the entries of the layers run.
    """
    stop = len(layers) if stop is None else stop
    new_state = {}
    for i in range(start, stop):
        k = str(i)
        if k not in params:
            raise KeyError(f"run_layers: params have no entry {k!r} for layer {i} ({layers[i].name}); "
                           f"expected the params of nn.serial(*layers), got keys {sorted(params, key=str)[:12]}")
        x, new_state[k] = nn.call(layers[i], k, params[k], state.get(k, {}), x, key=nn.child_key(key, i),
                                  train=train)
    return x, new_state


def layer_outputs(layers: Sequence[nn.Module], params, state, x, names: Sequence[str], *,
                  layer_names: Sequence[str] | None = None, key=None, train: bool = False) -> dict:
    """The outputs of the layers ``names`` of ``nn.serial(*layers)`` on input ``x``.

    Args:
      layers: the layers the model chains (e.g. ``fnnet.models.vgg.vgg_layers(19)``).
      params, state: the params and state of ``nn.serial(*layers)`` (or of a model
        that begins with it, keyed the same way).
      x: the input batch.
      names: layer names (``"conv4_2"``) or position keys (``"22"``).
      layer_names: one name per layer (``fnnet.models.vgg.vgg_layer_names(19)``).

    Returns:
      ``{name: output}`` for each of ``names``; only the layers up to the deepest one
      asked for run.

    Raises:
      KeyError: a name that is no layer's, listing the layer names (before any compute).
    """
    if isinstance(names, str):
        names = (names,)
    index = {n: layer_index(layers, n, layer_names=layer_names, where="layer_outputs") for n in names}
    if not index:
        raise ValueError("layer_outputs: expected at least one layer name, got none")
    wanted: dict[int, list[str]] = {}
    for n, i in index.items():
        wanted.setdefault(i, []).append(n)
    out, y = {}, x
    previous = 0
    for i in sorted(wanted):
        y, _ = run_layers(layers, params, state, y, previous, i + 1, key=key, train=train)
        for n in wanted[i]:
            out[n] = y
        previous = i + 1
    return {n: out[n] for n in names}
