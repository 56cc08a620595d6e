"""Synthesizing the accelerator for a bundle: :func:`synthesize_bundle`.

Sizes a :class:`~quickspike.hw.config.HwConfig` for the bundle's network
(:meth:`HwConfig.from_network`, or one given; the weight RAM banked per target and the
conv, compensation and early-exit datapaths left out when the network uses none), generates its
Verilog and manifest, and
runs :func:`~quickspike.synth.run.synthesize`. ``hwcfg.json`` and ``manifest.json`` are
written beside the synthesis artifacts, and the result records the configuration.
"""

from __future__ import annotations

import json
from pathlib import Path

from quickspike.synth.run import SynthResult, _write, spiker_comparison, synthesize
from quickspike.synth.targets import Target

__all__ = ["synthesize_bundle", "synthesize_hwcfg"]


def synthesize_hwcfg(hwcfg, target: "str | Target", out_dir: "str | Path", freq_mhz: float | None = None,
                     **kwargs) -> SynthResult:
    """Generate the accelerator for ``hwcfg`` and synthesize it for ``target``."""
    from quickspike.hw.generate import TOP_NAME, generate_verilog, manifest

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hwcfg.json").write_text(json.dumps(hwcfg.to_dict(), indent=2, sort_keys=True) + "\n")
    (out / "manifest.json").write_text(json.dumps(manifest(hwcfg), indent=2, sort_keys=True) + "\n")
    return synthesize(generate_verilog(hwcfg), TOP_NAME, target, out, freq_mhz, **kwargs)


#: Weight RAM bank depth per family: one ECP5 DP16KD in its 1024 x 18 mode, one iCE40
#: SPRAM (16 k x 16). A bank's output is registered before the bank select
#: (``HwConfig.weight_bank_words``; the cycle counts do not depend on it).
BANK_WORDS = {"ecp5": 1024, "ice40": 16384}


def _bank_words(net, lanes: int, pow2: bool, target, overrides: dict) -> int:
    """The weight bank depth for ``target``: 0 (one bank) when the weights fit one bank."""
    from quickspike.hw.config import HwConfig
    from quickspike.synth.targets import get_target

    bank = BANK_WORDS.get(get_target(target).family, 0)
    words = overrides.get("weight_words") or HwConfig.from_network(net, lanes, pow2=pow2).weight_words
    return bank if words > bank else 0


def synthesize_bundle(bundle: "str | Path", target: "str | Target", out_dir: "str | Path",
                      freq_mhz: float | None = None, *, lanes: int = 8, timesteps: int | None = None,
                      pow2: bool = True, hw: dict | None = None, hwcfg=None,
                      cycles_per_image: float | None = None, **kwargs) -> SynthResult:
    """Size the accelerator for the network in ``bundle`` and synthesize it for ``target``.

    The configuration is :meth:`HwConfig.from_network` for ``lanes`` with the explicit
    limits in ``hw`` (``HwConfig`` field names, as ``quickspike generate`` takes them),
    so the same options give the same design as ``generate`` and ``cosim``;
    ``pow2=False`` keeps the memory depths exact instead of powers of two (this can save
    block RAM). ``hwcfg`` replaces the sizing. The network must fit the configuration
    (:func:`~quickspike.hw.fit.check_fits`, for ``timesteps``). Other keyword
    arguments go to :func:`~quickspike.synth.run.synthesize`.

    The result's ``comparison`` (:func:`~quickspike.synth.run.spiker_comparison`, also
    in ``report.txt``) puts the logic, the latency per image (``cycles_per_image``,
    measured by cosim for this lane count, over the achieved Fmax) and the bundle's
    integer-model accuracy (``meta["int_accuracy"]``) beside Spiker+'s MNIST figures.
    """
    from quickspike.errors import FitError, UsageError
    from quickspike.hw.config import HwConfig
    from quickspike.hw.fit import check_fits
    from quickspike.sw.bundle import load_bundle

    net = load_bundle(bundle)
    if hwcfg is None:
        if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= 64:
            raise UsageError(f"lanes = {lanes!r} is out of range [1, 64]")
        overrides = {k: v for k, v in (hw or {}).items() if v is not None}
        for name, value in overrides.items():
            try:
                HwConfig(spec=net.spec, **{name: value})
            except (TypeError, ValueError) as e:
                raise UsageError(f"--{name.replace('_', '-')}: {e}") from None
        # the datapaths the bundle never uses are left out (same cycles; a bundle that
        # needs one is refused by check_fits)
        overrides.setdefault("conv", any(layer.kind == "conv" for layer in net.layers))
        overrides.setdefault("compensation", bool(net.compensation.enabled))
        overrides.setdefault("early_exit", net.exit.rule != "none")
        if "weight_bank_words" not in overrides:
            overrides["weight_bank_words"] = _bank_words(net, lanes, pow2, target, overrides)
        try:
            hwcfg = HwConfig.from_network(net, lanes, pow2=pow2, **overrides)
        except (TypeError, ValueError) as e:
            raise FitError(f"the network does not fit any generated design: {e}") from None
    check_fits(net, hwcfg, timesteps=timesteps)
    accuracy = (net.meta or {}).get("int_accuracy")
    result = synthesize_hwcfg(hwcfg, target, out_dir, freq_mhz, **kwargs)
    result.comparison = spiker_comparison(result.luts, result.fmax_mhz, cycles_per_image,
                                          accuracy if isinstance(accuracy, (int, float)) else None,
                                          hwcfg.lanes)
    _write(result, Path(out_dir))
    return result
