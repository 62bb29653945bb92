"""`python -m demo` (checkout), `python -m tracetui.demo` (installed wheel), or `python demo`."""

try:
    from .assistant import main
except ImportError:  # `python demo`: the directory itself is on sys.path, without a package
    from assistant import main  # type: ignore[no-redef,import-not-found]

raise SystemExit(main())
