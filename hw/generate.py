"""Verilog and a JSON manifest for one :class:`~quickspike.hw.config.HwConfig`."""

from __future__ import annotations

import json

from amaranth.back import verilog

from quickspike.hw import protocol as P
from quickspike.hw.config import COMP_FRAC_BITS, COMP_MUL_BITS, COMP_SHIFT_MAX, HwConfig
from quickspike.hw.exit_unit import shift_bits, threshold_bits
from quickspike.hw.top import Accelerator
from quickspike.sw.spec import SPLIT_FRAC_BITS, TT_WEIGHT_BITS

__all__ = ["TOP_NAME", "generate_verilog", "manifest", "manifest_json"]

TOP_NAME = "quickspike_top"


def generate_verilog(hwcfg: HwConfig, name: str = TOP_NAME) -> str:
    """The accelerator for ``hwcfg`` as Verilog text (top module ``name``)."""
    if not isinstance(hwcfg, HwConfig):
        raise TypeError(f"hwcfg must be a HwConfig, not {type(hwcfg).__name__}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"module name {name!r} is not a Verilog identifier")
    top = Accelerator(hwcfg)
    return verilog.convert(top, name=name, emit_src=False)


def manifest(hwcfg: HwConfig, name: str = TOP_NAME) -> dict:
    """Parameters, memory limits and the port list of the generated top."""
    L = hwcfg.lanes
    spec = hwcfg.spec
    return {
        "top": name,
        "hwcfg": hwcfg.to_dict(),
        "ports": {
            "clk": 1, "rst": 1, "cmd__payload": P.IN_WIDTH, "cmd__valid": 1, "cmd__ready": 1,
            "res__payload": P.OUT_WIDTH, "res__valid": 1, "res__ready": 1, "busy": 1,
        },
        "memories_bits": {
            "weights": hwcfg.weight_words * L * spec.weight_bits,
            "currents": hwcfg.neuron_words * (L * spec.acc_bits + 1),     # + the epoch bit
            # mask, g, sp and (yp, xp) or a membrane word's address (see top.py)
            "events": hwcfg.event_words * (L + (hwcfg.neuron_addr_bits + 1) + 2 * hwcfg.map_bits
                                           + max(2 * hwcfg.map_bits, hwcfg.neuron_addr_bits)),
            "membranes": hwcfg.neuron_words * L * spec.membrane_bits,
            "outputs": hwcfg.out_words * L * spec.membrane_bits,
            # SSNN: the temporal transformer's weights (none without stage support)
            "transformer_weights": ((hwcfg.max_stages - 1) * hwcfg.max_stage_steps ** 2 * TT_WEIGHT_BITS
                                    if hwcfg.stages else 0),
        },
        "limits": {
            "max_layers": hwcfg.max_layers, "weight_words": hwcfg.weight_words,
            "neuron_words": hwcfg.neuron_words, "event_words": hwcfg.event_words,
            "max_inputs": hwcfg.max_inputs, "max_outputs": hwcfg.max_outputs,
            "max_map": hwcfg.max_map, "max_timesteps": hwcfg.max_timesteps,
            "max_stages": hwcfg.max_stages, "max_stage_steps": hwcfg.max_stage_steps,
        },
        "protocol": {"weights_per_beat": P.weights_per_beat(spec),
                     "beats_per_word": P.beats_per_word(spec, L),
                     "exit_rules": dict(P.EXIT_RULE_CODES),
                     "exit_threshold_bits": threshold_bits(spec, hwcfg.max_outputs),
                     "exit_shift_bits": shift_bits(spec),
                     "result_tags": dict(P.TAG),
                     "compensation": {"frac_bits_max": COMP_FRAC_BITS, "shift_max": COMP_SHIFT_MAX,
                                      "mul_bits": COMP_MUL_BITS},
                     "input_codings": ["direct", "events"],
                     "stages": {"registers": P.REG_STAGES, "stage_base": P.STAGE_BASE,
                                "split_frac_bits": SPLIT_FRAC_BITS} if hwcfg.stages else None},
    }


def manifest_json(hwcfg: HwConfig, name: str = TOP_NAME) -> str:
    return json.dumps(manifest(hwcfg, name), indent=2, sort_keys=True)
