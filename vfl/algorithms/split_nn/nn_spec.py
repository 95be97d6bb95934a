"""Torch models and optimizers declared in config, so a YAML file can name a bottom or top model.

`mlp(...)` builds the module and remembers its spec (`module_spec`), which is what a saved
model part writes as JSON beside its weights; `build_module(spec)` rebuilds it on load. Code
that wants another architecture passes its own `nn.Module` and supplies it again on load.
`config_module` fills a config's partial spec (the sizes the data fixes); `optimizer_class`
turns a name like "adam" into the torch optimizer.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from vfl.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU, "gelu": nn.GELU,
}
SPEC_ATTR = "vfl_spec"


def mlp(in_features: int, hidden: list[int] | tuple[int, ...], out: int,
        activation: str = "relu", out_activation: str | None = None) -> nn.Sequential:
    """Linear layers of sizes in_features -> *hidden -> out, `activation` between them.

    Parameters
    ----------
    in_features : int
        Input width.
    hidden : list or tuple of int
        Widths of the hidden layers.
    out : int
        Output width.
    activation : str, default "relu"
        Between layers: "relu", "tanh", "sigmoid", "leaky_relu", "elu" or "gelu".
    out_activation : str or None, default None
        After the last layer, or none.

    Returns
    -------
    torch.nn.Sequential
        The module; it remembers its spec, so a saved model part can rebuild it.

    Raises
    ------
    ConfigError
        A size or an activation is invalid.
    """
    spec = {"type": "mlp", "in_features": in_features, "hidden": list(hidden), "out": out,
            "activation": activation, "out_activation": out_activation}
    return build_module(spec)


def build_module(spec: Any, where: str = "model spec") -> nn.Sequential:
    """Build from a dict like {"type": "mlp", "in_features": 10, "hidden": [16], "out": 8}."""
    if not isinstance(spec, dict) or spec.get("type", "mlp") != "mlp":
        raise ConfigError(f"{where}: expected a mapping with type 'mlp', got {spec!r}")
    unknown = set(spec) - {"type", "in_features", "hidden", "out", "activation", "out_activation"}
    if unknown:
        raise ConfigError(f"{where}: unknown fields {sorted(unknown)}")
    sizes = [spec.get("in_features"), *(spec.get("hidden") or []), spec.get("out")]
    for name, v in zip(["in_features", *["hidden"] * (len(sizes) - 2), "out"], sizes, strict=True):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{where}: field '{name}' must be a positive int, got {v!r}")
    act = spec.get("activation", "relu")
    out_act = spec.get("out_activation")
    for name, a in (("activation", act), ("out_activation", out_act)):
        if a is not None and a not in ACTIVATIONS:
            raise ConfigError(f"{where}: field '{name}' must be one of {sorted(ACTIVATIONS)}, "
                              f"got {a!r}")
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[act]())
    if out_act is not None:
        layers.append(ACTIVATIONS[out_act]())
    module = nn.Sequential(*layers)
    setattr(module, SPEC_ATTR, {"type": "mlp", "in_features": sizes[0], "hidden": sizes[1:-1],
                                "out": sizes[-1], "activation": act, "out_activation": out_act})
    return module


def module_spec(module: nn.Module | None) -> dict[str, Any] | None:
    """The spec a module was built from by `mlp`/`build_module`, else None."""
    return None if module is None else getattr(module, SPEC_ATTR, None)


def config_module(spec: Any, in_features: int, out: int | None, where: str,
                  seed: int | None = None) -> nn.Sequential:
    """An MLP from a config mapping whose sizes the data fixes: `in_features` always, `out`
    when not None (else the config must give it). `seed` makes the initial weights repeatable."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping like {{hidden: [16], out: 8}}, got {spec!r}")
    fixed = {"in_features": in_features} if out is None else {"in_features": in_features, "out": out}
    for name, value in fixed.items():
        if name in spec and spec[name] != value:
            raise ConfigError(f"{where}: field '{name}' is {spec[name]!r} but must be {value} here")
    full = {"type": "mlp", "hidden": [], **spec, **fixed}
    if seed is None:
        return build_module(full, where)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_module(full, where)


def optimizer_class(name: Any, where: str) -> type[torch.optim.Optimizer]:
    """A torch optimizer by (case-insensitive) class name: "adam", "SGD", "AdamW", ..."""
    found = {n.lower(): c for n, c in vars(torch.optim).items()
             if inspect.isclass(c) and issubclass(c, torch.optim.Optimizer) and c is not torch.optim.Optimizer}
    if not isinstance(name, str) or name.lower() not in found:
        raise ConfigError(f"{where}: optimizer must be one of {sorted(found)}, got {name!r}")
    return found[name.lower()]
