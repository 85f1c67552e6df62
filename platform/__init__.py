"""vlp's core library (imported as `vlp.platform`): spec, storage, tracking, registry, launching, pipeline backends."""

if __name__ == "platform":
    # This folder was imported as the top-level `platform` because the repository root is on sys.path
    # (`python -m ...` from the root does that). Hand the name back to the standard library's module,
    # which torch and others import at start-up.
    import importlib.util as _util
    import sys as _sys
    import sysconfig as _sysconfig

    _spec = _util.spec_from_file_location("platform", f"{_sysconfig.get_path('stdlib')}/platform.py")
    _stdlib_platform = _util.module_from_spec(_spec)
    _sys.modules["platform"] = _stdlib_platform
    _spec.loader.exec_module(_stdlib_platform)
