"""Build the deployment zip of ``handlers/`` for AWS Lambda (Python 3.11).

The zip holds the ``handlers`` package and its two dependencies, installed for
Lambda's Linux rather than for this machine: ``pip install --target`` with
``--platform manylinux2014_<arch> --only-binary=:all: --python-version 3.11
--implementation cp``, which picks psycopg's binary wheel (libpq bundled) built
for glibc 2.17, old enough for the python3.11 runtime (Amazon Linux 2). boto3 is
not packed: the Lambda runtime provides it, and only the credential patterns
use it.

Point a function at a handler with ``Handler = handlers.<pattern>_handler.lambda_handler``
and runtime ``python3.11``; architecture ``x86_64`` or ``arm64`` to match ``--arch``.

With ``--rds-ca-bundle FILE`` (repeatable) the certificates of every FILE go into
one file at the zip's root, :data:`CA_BUNDLE_NAME`, which the template names in
``DB_SSLROOTCERT`` so libpq can check the server with ``sslmode=verify-full``.
Two bundles make it whole: AWS publishes the RDS certificate authorities as
``https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem`` (AWS, "Using
SSL/TLS to encrypt a connection to a DB instance or cluster", Certificate
bundles for all AWS Regions), which sign the instance's certificate; RDS Proxy
presents a certificate from AWS Certificate Manager instead, which chains to
Amazon Root CA 1, ``https://www.amazontrust.com/repository/AmazonRootCA1.pem``
(Amazon Trust Services). A bundle that is missing or holds no certificate is
refused before anything is built (:class:`CaBundleError`, exit code 2).

>>> result = build_package(PackageSpec(arch="x86_64", out=Path("dist/handlers.zip")))
>>> result.size_bytes > 0
True
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from connstorm.errors import ConnstormError, EnvironmentProblemError, ExitCode

_log = logging.getLogger(__name__)

#: The handlers package shipped with connstorm (a link to the repository's handlers/).
HANDLERS_DIR = Path(__file__).resolve().parent / "handlers"
#: Lambda architecture -> the wheel platform tag pip is asked for.
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
REQUIREMENTS = ("psycopg[binary]>=3.2", "psycopg-pool>=3.2")
PIP_TIMEOUT_S = 600.0
#: Every file gets this timestamp, so the same inputs give the same zip bytes.
ZIP_DATE = (2020, 1, 1, 0, 0, 0)
#: Where ``--rds-ca-bundle`` puts the certificates in the zip (the template's DB_SSLROOTCERT).
CA_BUNDLE_NAME = "rds-ca-bundle.pem"
#: Where AWS publishes the RDS certificate bundle (all Regions), for messages and docs.
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"


class CaBundleError(ConnstormError):
    """A ``--rds-ca-bundle`` file is missing, unreadable or holds no certificate."""

    exit_code = ExitCode.USAGE


def default_out(arch: str) -> Path:
    """Where ``connstorm package`` writes by default: ``dist/handlers-<arch>.zip``.

    ``deploy/template.yaml`` names the x86_64 one as its ``CodeUri``
    (``../dist/handlers-x86_64.zip``, relative to the template), so the default
    build is exactly what ``sam deploy`` uploads.
    """
    return Path("dist") / f"handlers-{arch}.zip"


@dataclass(frozen=True)
class PackageSpec:
    """What to build: the architecture, the output file, and where things come from."""

    arch: str = "x86_64"
    out: Path = field(default_factory=lambda: default_out("x86_64"))
    python_version: str = "3.11"
    handlers_dir: Path = HANDLERS_DIR
    requirements: tuple[str, ...] = REQUIREMENTS
    #: Extra ``pip install`` arguments (e.g. ``--find-links DIR --no-index`` offline).
    pip_args: tuple[str, ...] = field(default_factory=tuple)
    #: PEM files whose certificates go into the zip as :data:`CA_BUNDLE_NAME`.
    ca_bundles: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def platform(self) -> str:
        """The manylinux platform tag for ``arch``."""
        try:
            return PLATFORMS[self.arch]
        except KeyError:
            raise EnvironmentProblemError(
                f"--arch {self.arch}: expected one of {', '.join(PLATFORMS)}") from None


@dataclass(frozen=True)
class PackageResult:
    """What was built."""

    path: Path
    size_bytes: int
    files: int
    distributions: tuple[str, ...]
    #: Certificates in the zip's :data:`CA_BUNDLE_NAME` (0: no bundle given).
    ca_certificates: int = 0


def install_dependencies(spec: PackageSpec, target: Path) -> None:
    """``pip install --target`` the requirements as wheels for Lambda's platform."""
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--target", str(target), "--platform", spec.platform,
            "--only-binary=:all:", "--python-version", spec.python_version,
            "--implementation", "cp", *spec.pip_args, *spec.requirements]
    _log.info("running %s", " ".join(argv))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise EnvironmentProblemError(
            f"pip did not finish within {PIP_TIMEOUT_S:.0f} s (is PyPI reachable?)") from None
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise EnvironmentProblemError(
            f"pip could not fetch {' '.join(spec.requirements)} for {spec.platform}: {last}")


def read_ca_bundle(path: Path) -> tuple[str, int]:
    """The PEM text of ``path`` and how many CA certificates OpenSSL finds in it.

    Loaded with the standard library's OpenSSL, as libpq will load it: a file it
    cannot parse, or one without a certificate, is refused here rather than at
    the functions' first connect on AWS.
    """
    where = f"--rds-ca-bundle {path}"
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise CaBundleError(f"{where}: no such file (the RDS bundle is published at "
                            f"{RDS_CA_BUNDLE_URL})") from None
    except IsADirectoryError:
        raise CaBundleError(f"{where}: is a folder; give a PEM file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a PEM text file"
        raise CaBundleError(f"{where}: cannot read: {reason or exc}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=text)
    except ssl.SSLError:
        count = 0
    else:
        count = context.cert_store_stats()["x509_ca"]
    if count == 0:
        raise CaBundleError(f"{where}: holds no CA certificate (expected PEM "
                            "'-----BEGIN CERTIFICATE-----' blocks)")
    return text, count


def write_ca_bundle(paths: tuple[Path, ...], dest: Path) -> int:
    """Concatenate the certificates of ``paths`` into ``dest``; returns how many."""
    texts, total = [], 0
    for path in paths:
        text, count = read_ca_bundle(path)
        texts.append(text.strip() + "\n")
        total += count
    dest.write_text("".join(texts), encoding="ascii")
    return total


def _copy_handlers(src: Path, dest: Path) -> None:
    if not (src / "__init__.py").is_file():
        raise EnvironmentProblemError(f"{src}: not a handlers package (no __init__.py)")
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _write_zip(root: Path, out: Path) -> int:
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=9) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), ZIP_DATE)
            # Keep the execute bit (bundled shared libraries), as Lambda unpacks it.
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    partial.replace(out)  # no half-written zip under the real name
    return len(files)


def build_package(spec: PackageSpec) -> PackageResult:
    """Build the zip at ``spec.out``; raises :class:`EnvironmentProblemError` on failure."""
    spec.platform  # noqa: B018 - validates arch before any work
    for bundle in spec.ca_bundles:
        read_ca_bundle(bundle)  # refused before pip spends a minute
    out = spec.out.resolve()
    if out.is_dir():
        raise EnvironmentProblemError(f"--out {spec.out}: is a folder; give a file name")
    with tempfile.TemporaryDirectory(prefix="connstorm-package-") as tmp:
        staging = Path(tmp) / "package"
        staging.mkdir()
        install_dependencies(spec, staging)
        _copy_handlers(spec.handlers_dir, staging / "handlers")
        certificates = (write_ca_bundle(spec.ca_bundles, staging / CA_BUNDLE_NAME)
                        if spec.ca_bundles else 0)
        dists = tuple(sorted(p.name.removesuffix(".dist-info")
                             for p in staging.glob("*.dist-info")))
        try:
            count = _write_zip(staging, out)
        except OSError as exc:
            raise EnvironmentProblemError(f"--out {spec.out}: cannot write: "
                                          f"{exc.strerror or exc}") from None
    return PackageResult(out, out.stat().st_size, count, dists, certificates)
