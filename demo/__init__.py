"""The tracetui demo: a simulated assistant instrumented with `tracetui.tracer` (see assistant.py).

Shipped inside the wheel as `tracetui.demo`; in a checkout it is the top-level `demo` directory.
"""
