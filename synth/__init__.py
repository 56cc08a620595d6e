"""quickspike.synth: synthesis, place and route and bitstreams with the open tools.

* :mod:`~quickspike.synth.targets` — the FPGA targets (``ice40-up5k``, ``ecp5-25k``, ``ecp5-85k``)
* :mod:`~quickspike.synth.tools` — running the YoWASP tools, logs, one-line errors
* :mod:`~quickspike.synth.prepare` — Verilog clean-up (all-zero memory initializers)
* :mod:`~quickspike.synth.wrapper` — the few-pin serial wrapper for core-only builds
* :mod:`~quickspike.synth.run` — :func:`synthesize`: yosys → nextpnr → pack, reports
* :mod:`~quickspike.synth.bundle` — :func:`synthesize_bundle`: bundle → accelerator → FPGA
* :mod:`~quickspike.synth.command` — the ``synth`` command line
* :mod:`~quickspike.synth.demo` — a small memory-and-adder design for smoke tests
"""
