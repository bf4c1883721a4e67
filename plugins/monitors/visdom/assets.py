"""The JavaScript, CSS and fonts Visdom's page needs, fetched from the npm registry.

Visdom's own launcher downloads these from CDNs at every start, and exits when it
cannot; a machine without internet then shows a blank page. The same files are
ordinary npm packages, so ``kitpose visdom --install-assets`` fetches them with
``npm pack`` (which honours the machine's npm registry and proxy settings) and
copies each one into Visdom's static folder under the name Visdom's page asks for.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from kitpose.errors import KitposeError
from kitpose.files import write_atomic

_MATHJAX = "mathjax@2.7.5"
_MATHJAX_FILES = (
    "MathJax.js", "config/Safe.js", "config/TeX-AMS-MML_HTMLorMML.js", "extensions/Safe.js",
    "extensions/MathMenu.js", "extensions/MathZoom.js",
    "jax/output/SVG/config.js", "jax/output/SVG/jax.js", "jax/output/SVG/fonts/TeX/fontdata.js",
    "jax/output/SVG/fonts/TeX/Size1/Regular/Main.js",
)

#: file under Visdom's static folder -> (npm package@version, file inside the package)
ASSETS: dict[str, tuple[str, str]] = {
    "js/jquery.min.js": ("jquery@3.1.1", "dist/jquery.min.js"),
    "js/bootstrap.min.js": ("bootstrap@3.3.7", "dist/js/bootstrap.min.js"),
    "css/bootstrap.min.css": ("bootstrap@3.3.7", "dist/css/bootstrap.min.css"),
    "fonts/glyphicons-halflings-regular.eot": ("bootstrap@3.3.7", "dist/fonts/glyphicons-halflings-regular.eot"),
    "fonts/glyphicons-halflings-regular.svg": ("bootstrap@3.3.7", "dist/fonts/glyphicons-halflings-regular.svg"),
    "fonts/glyphicons-halflings-regular.ttf": ("bootstrap@3.3.7", "dist/fonts/glyphicons-halflings-regular.ttf"),
    "fonts/glyphicons-halflings-regular.woff": ("bootstrap@3.3.7",
                                                "dist/fonts/glyphicons-halflings-regular.woff"),
    "fonts/glyphicons-halflings-regular.woff2": ("bootstrap@3.3.7",
                                                 "dist/fonts/glyphicons-halflings-regular.woff2"),
    "js/react-react.min.js": ("react@16.2.0", "umd/react.production.min.js"),
    "js/react-dom.min.js": ("react-dom@16.2.0", "umd/react-dom.production.min.js"),
    "js/react-modal.min.js": ("react-modal@3.1.10", "dist/react-modal.min.js"),
    "js/plotly-plotly.min.js": ("plotly.js-dist-min@2.11.1", "plotly.min.js"),
    "js/sjcl.js": ("sjcl@1.0.7", "sjcl.js"),
    "js/layout_bin_packer.js": ("layout-bin-packer@1.4.0", "dist/layout-bin-packer.js"),
    "js/layout-bin-packer.js.map": ("layout-bin-packer@1.4.0", "dist/layout-bin-packer.js.map"),
    "js/d3.v3.min.js": ("d3@3.5.17", "d3.min.js"),
    "js/d3-selection-multi.v1.js": ("d3-selection-multi@1.0.1", "build/d3-selection-multi.js"),
    "js/saveSvgAsPng.js": ("save-svg-as-png@1.4.17", "lib/saveSvgAsPng.js"),
    "css/react-resizable-styles.css": ("react-resizable@1.4.6", "css/styles.css"),
    "css/react-grid-layout-styles.css": ("react-grid-layout@0.16.3", "css/styles.css"),
    "fonts/classnames": ("classnames@2.2.5", "index.js"),
    **{f"js/mathjax/2.7.5/{name}": (_MATHJAX, name) for name in _MATHJAX_FILES},
}


def visdom_static_dir() -> Path:
    """The ``static`` folder of the installed visdom package (what its server serves)."""
    spec = importlib.util.find_spec("visdom")
    if spec is None or spec.origin is None:
        raise KitposeError("the visdom package is not installed", hint="pip install visdom")
    return Path(spec.origin).parent / "static"


def missing_assets(static: Path | None = None) -> list[str]:
    """Asset files not yet in ``static`` (default: visdom's static folder)."""
    static = Path(static) if static is not None else visdom_static_dir()
    return [name for name in ASSETS if not (static / name).is_file()]


def _tarball_name(spec: str) -> str:
    name, _, version = spec.rpartition("@")
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def _pack(npm: str, specs: list[str], into: Path, echo: Callable[[str], None]) -> None:
    echo(f"fetching {len(specs)} npm packages: {' '.join(specs)}")
    try:
        done = subprocess.run([npm, "pack", "--silent", *specs], cwd=into, capture_output=True, text=True,
                              timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KitposeError(f"npm pack did not run: {exc}") from None
    if done.returncode != 0:
        lines = [l for l in done.stderr.splitlines() if l.strip() and "Unknown user config" not in l]
        reason = lines[-1].strip() if lines else f"exit code {done.returncode}"
        raise KitposeError(f"npm pack failed: {reason}",
                           hint="check that the npm registry is reachable (npm config get registry)")




def install_assets(static: Path | None = None, *, npm: str | None = None,
                   echo: Callable[[str], None] = print) -> list[Path]:
    """Fetch every asset with ``npm pack`` and copy it into ``static``; returns the files written."""
    static = Path(static) if static is not None else visdom_static_dir()
    npm = npm or shutil.which("npm")
    if not npm:
        raise KitposeError("npm is not installed; it fetches Visdom's page assets",
                           hint="install Node.js and npm (Debian: apt-get install npm)")
    try:
        static.mkdir(parents=True, exist_ok=True)
        probe = static / ".kitpose-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise KitposeError(f"cannot write into {static}: {exc.strerror or exc}",
                           hint="run with permission to change the Python environment") from None
    specs = sorted({spec for spec, _ in ASSETS.values()})
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="kitpose-npm-") as tmp:
        folder = Path(tmp)
        _pack(npm, specs, folder, echo)
        archives: dict[str, tarfile.TarFile] = {}
        try:
            for target, (spec, member) in ASSETS.items():
                if spec not in archives:
                    tarball = folder / _tarball_name(spec)
                    if not tarball.is_file():
                        raise KitposeError(f"npm pack did not produce {tarball.name}")
                    archives[spec] = tarfile.open(tarball, "r:gz")
                try:
                    handle = archives[spec].extractfile("package/" + member)
                except KeyError:
                    handle = None
                if handle is None:
                    raise KitposeError(f"{spec} has no file {member}",
                                       hint="the package version may differ from the one Visdom expects")
                write_atomic(static / target, handle.read())
                written.append(static / target)
        finally:
            for archive in archives.values():
                archive.close()
    version = _visdom_version()
    if version:
        # visdom's own downloader skips files it finds when this names its version
        write_atomic(static / "version.built", version.encode())
    ensure_user_css(static)
    echo(f"installed {len(written)} files into {static}")
    return written


def ensure_user_css(static: Path | None = None) -> None:
    """An empty ``visdom/user/style.css`` next to the static folder. The page links it through
    Tornado's ``static_url``, which reads the file to version the link; visdom's package has
    none, so every page load logged "Could not open static file". Its content is served
    from the user's own settings either way."""
    static = Path(static) if static is not None else visdom_static_dir()
    target = static.parent / "user" / "style.css"
    if target.is_file():
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, b"")
    except OSError:  # a read-only environment: the page works, the server logs the line
        pass


def _visdom_version() -> str:
    spec = importlib.util.find_spec("visdom")
    if spec is None or spec.origin is None:
        return ""
    version_file = Path(spec.origin).parent / "VERSION"
    return version_file.read_text().strip() if version_file.is_file() else ""
