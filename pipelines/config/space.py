"""The search space, written in the config tree as ``"dotted.key=kind:args"`` strings so it
lives in YAML and on the command line like any other setting:

    optim.lr_g=loguniform:1e-5:1e-2     optim.beta1=uniform:0:0.9
    model.n_critic=choice:1,2,5         optim.lr_d=grid:1e-4,2e-4,4e-4

Keys are the run config's own dotted paths, so a sampled point is applied to the tree with
the same code as a ``--set`` override and is checked by the same schema."""

from __future__ import annotations

import copy
import difflib
import importlib.util
from dataclasses import dataclass
from typing import Any

from pipelines.config import ConfigError, flatten
from pipelines.config.load import parse_value, set_dotted
from pipelines.config.schema import GanforgeConfig

KINDS = ("loguniform", "uniform", "choice", "grid")
SEED_KEY = "train.seed"


@dataclass(frozen=True)
class Dimension:
    key: str
    kind: str
    values: tuple

    def domain(self) -> Any:
        from ray import tune

        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "choice":
            return tune.choice(list(self.values))
        return tune.grid_search(list(self.values))

    def describe(self) -> str:
        return f"{self.kind}:{','.join(str(v) for v in self.values)}"


def _value(text: str, entry: str) -> Any:
    value = parse_value(text)  # as --set reads values: "1e-4" is a float
    if value == "":
        raise ConfigError(f"tune.space entry {entry!r}: an empty value")
    return value


def parse_dimension(entry: str, valid_keys: list[str]) -> Dimension:
    key, sep, spec = entry.partition("=")
    kind, _, args = spec.partition(":")
    key, kind = key.strip(), kind.strip()
    if not sep or kind not in KINDS:
        raise ConfigError(f"tune.space entry {entry!r} is not 'dotted.key=kind:args' with kind one of {KINDS}")
    if key not in valid_keys:
        hint = difflib.get_close_matches(key, valid_keys, n=1)
        raise ConfigError(f"tune.space: unknown config key {key}" + (f" (did you mean {hint[0]}?)" if hint else ""))
    parts = args.split(":") if kind in ("loguniform", "uniform") else args.split(",")
    values = tuple(_value(p.strip(), entry) for p in parts)
    if kind in ("loguniform", "uniform"):
        if len(values) != 2 or not all(isinstance(v, (int, float)) for v in values) or not values[0] < values[1]:
            raise ConfigError(f"tune.space entry {entry!r}: {kind} needs two numbers lo:hi with lo < hi")
        if kind == "loguniform" and values[0] <= 0:
            raise ConfigError(f"tune.space entry {entry!r}: loguniform needs lo > 0")
    elif len(values) < 1:
        raise ConfigError(f"tune.space entry {entry!r}: {kind} needs at least one value")
    return Dimension(key, kind, values)


def parse_space(entries: list[str], tree: dict[str, Any]) -> dict[str, Dimension]:
    """Dimensions by key; a later entry for the same key replaces an earlier one (so a
    command-line ``--space`` overrides the YAML's)."""
    valid = [k for k in flatten(tree) if not k.startswith(("tune.", "tracking.", "data.path"))]
    dims: dict[str, Dimension] = {}
    for entry in entries:
        dim = parse_dimension(entry, valid)
        dims[dim.key] = dim
    if not dims:
        raise ConfigError("tune.space is empty: nothing to search")
    return dims


def with_seeds(dims: dict[str, Dimension], seeds: int, first: int) -> dict[str, Dimension]:
    """Every point trained with ``seeds`` seeds from ``first`` on: a grid over ``train.seed``,
    which Tune crosses with each sampled point (and each of ``tune.points``)."""
    if seeds == 1:
        return dims
    if SEED_KEY in dims:
        raise ConfigError(f"tune.seeds={seeds} sets {SEED_KEY} itself: drop the {SEED_KEY} entry from tune.space")
    return {**dims, SEED_KEY: Dimension(SEED_KEY, "grid", tuple(range(first, first + seeds)))}


def apply_point(tree: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """The config tree of one trial: the base tree with the sampled values set."""
    tree = copy.deepcopy(tree)
    for key, value in point.items():
        set_dotted(tree, key.split("."), value)
    return tree


def parse_points(entries: list[str], dims: dict[str, Dimension]) -> list[dict[str, Any]]:
    """``["optim.lr_g=2e-4,optim.lr_d=2e-4", ...]`` -> points Tune tries first, in order."""
    points = []
    for entry in entries:
        point = {}
        for part in entry.split(","):
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or key not in dims:
                raise ConfigError(
                    f"tune.points entry {entry!r}: {key or part} is not a key of tune.space ({', '.join(dims)})"
                )
            point[key] = _value(raw.strip(), entry)
        missing = [k for k, d in dims.items() if k not in point and d.kind != "grid"]
        if missing:
            raise ConfigError(f"tune.points entry {entry!r} gives no value for {', '.join(missing)}")
        points.append(point)
    return points


def check_strategy(cfg: GanforgeConfig, dims: dict[str, Dimension]) -> None:
    """The search algorithm, scheduler, seeds and space must work together; refused with
    the reason before any search starts (Ray Tune's own errors come later and less clearly)."""
    tune = cfg.tune
    if tune.seeds > 1 and tune.scheduler == "pbt":
        raise ConfigError(
            "tune.seeds > 1 pools each point's seeds, but PBT changes the points during training: "
            "use tune.seeds=1 with pbt"
        )
    if tune.scheduler == "pbt" and all(d.kind == "grid" for d in dims.values()):
        raise ConfigError("tune.scheduler=pbt needs a non-grid dimension in tune.space to perturb")
    parse_points(tune.points, dims)
    if tune.search == "random":
        return
    if tune.scheduler == "pbt":
        raise ConfigError(
            "tune.search=optuna cannot drive tune.scheduler=pbt: PBT chooses and perturbs the "
            "configurations itself (Ray Tune refuses a search algorithm with it); use "
            "tune.search=random with pbt, or optuna with asha"
        )
    if tune.seeds > 1:
        raise ConfigError(
            "tune.seeds > 1 trains every point with several seeds, which tune.search=optuna cannot "
            "do (it proposes each point once): use tune.search=random"
        )
    if any(d.kind == "grid" for d in dims.values()):
        raise ConfigError("tune.search=optuna cannot sample a grid: use choice:... instead of grid:...")
    if importlib.util.find_spec("optuna") is None:
        raise ConfigError("tune.search=optuna needs the optuna package (pip install optuna)")
