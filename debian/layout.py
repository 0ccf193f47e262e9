"""Build step of the Debian package, run by the staged environment's Python (debian/rules).

    layout.py STAGE WEBEID_STAGE EXTENSION DEBIAN_DIR

Writes the system files of ``cardbridge`` (cardbridge.sysinstall.package_files) into STAGE
and the ``eu.webeid`` manifests into WEBEID_STAGE, and the copyright files into DEBIAN_DIR:
``copyright`` names cardbridge and every Python distribution bundled in the environment
with its licence, read from the environment's own metadata (the full licence texts stay in
each distribution's ``*.dist-info`` folder, and are quoted here as well).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import re
import sys
import sysconfig
from pathlib import Path

from cardbridge import cli, sysinstall

# Trove classifiers as SPDX short names, for distributions that name no expression.
CLASSIFIERS = {
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: BSD License": "BSD-3-Clause",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.1+",
}
APACHE = "/usr/share/common-licenses/Apache-2.0 (and in this distribution's *.dist-info folder)."
LICENCE_FILE = re.compile(r"(^|/)(LICEN[CS]E|COPYING|NOTICE|AUTHORS)[^/]*$", re.IGNORECASE)

MIT = """Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE."""


def body(text: str) -> str:
    """Text as a deb822 field continuation: each line indented, blank lines as ' .'."""
    lines = text.strip("\n").expandtabs().splitlines()
    return "\n".join(f" {line.rstrip()}" if line.strip() else " ." for line in lines)


def licence_name(dist: importlib.metadata.Distribution) -> str:
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return re.sub(r"\bOR\b", "or", re.sub(r"\bAND\b", "and", expression))
    names = [CLASSIFIERS[c] for c in meta.get_all("Classifier") or [] if c in CLASSIFIERS]
    if names:
        return " or ".join(dict.fromkeys(names))
    short = (meta.get("License") or "").strip()
    if short and "\n" not in short and len(short) < 40:
        return short.replace(" ", "-")
    raise SystemExit(f"{dist.metadata['Name']}: no licence in its metadata; add it to layout.py's table")


def licence_texts(dist: importlib.metadata.Distribution) -> list[tuple[str, str]]:
    out = []
    for file in dist.files or []:
        name = str(file)
        if ".dist-info/" in name and LICENCE_FILE.search(name):
            text = Path(str(dist.locate_file(file))).read_text(encoding="utf-8", errors="replace")
            if "Apache License" in text and "Version 2.0, January 2004" in text and "TERMS AND CONDITIONS" in text:
                text = "On Debian systems, the full text of the Apache License, Version 2.0, is in\n" + APACHE
            out.append((name, text))
    return out


def holders(dist: importlib.metadata.Distribution, texts: list[tuple[str, str]]) -> list[str]:
    """Who holds the copyright: the distribution's author or maintainer as its metadata names
    them, then the copyright notices in its licence files."""
    meta = dist.metadata
    author = (meta.get("Author") or meta.get("Author-email") or meta.get("Maintainer") or "").strip()
    found = [author or f"the {meta['Name']} authors"]
    for _, text in texts:
        for line in text.splitlines():
            match = re.match(r"\s*Copyright\s+(\(c\)\s*)?(.+)", line, re.IGNORECASE)
            if match and any(ch.isdigit() for ch in match.group(2)) and len(found) < 6:
                found.append(match.group(2).strip())
    return list(dict.fromkeys(found))


def top_paths(dist: importlib.metadata.Distribution, site: str) -> list[str]:
    """The distribution's files in the environment, as copyright globs (a folder as ``F/*``)."""
    tops: dict[str, bool] = {}
    for file in dist.files or []:
        parts = Path(str(file)).parts
        if parts and parts[0] != "..":
            tops[parts[0]] = tops.get(parts[0], False) or len(parts) > 1
    return [f"{site}/{top}/*" if is_dir else f"{site}/{top}" for top, is_dir in sorted(tops.items())]


def copyright_text(bundled: bool) -> str:
    paragraphs = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: cardbridge\n"
        "Comment: The package bundles the Python libraries below in a private environment\n"
        " (/usr/lib/cardbridge), each as its authors published it on PyPI. Each one's\n"
        " licence files are also in its *.dist-info folder there.",
        "Files: *\nCopyright: 2026 the cardbridge authors\nLicense: MIT\n" + body(MIT),
    ]
    if bundled:
        site = sysconfig.get_paths()["purelib"]
        site_rel = site.removeprefix(sys.prefix).lstrip("/")
        prefix = f"usr/lib/cardbridge/{site_rel}"
        for dist in sorted(importlib.metadata.distributions(path=[site]), key=lambda d: d.metadata["Name"].lower()):
            name = dist.metadata["Name"]
            if name.lower() == "cardbridge":
                continue
            texts = licence_texts(dist)
            licence = licence_name(dist)
            text = "\n\n".join(t for _, t in texts) or f"See https://pypi.org/project/{name}/{dist.version}/"
            paragraphs.append(
                f"Files: {' '.join(top_paths(dist, prefix))}\n"
                f"Copyright: {body(chr(10).join(holders(dist, texts))).lstrip()}\n"
                f"Comment: {name} {dist.version}, from PyPI\n"
                f"License: {licence}\n{body(text)}"
            )
    return "\n\n".join(paragraphs) + "\n"


COMPILE = """\
    # Compile the environment's Python files once, as root, so that no run writes into
    # /usr/lib/cardbridge; prerm removes them again.
    /usr/lib/cardbridge/bin/python3 -I -m compileall -q -j 0 /usr/lib/cardbridge/lib >/dev/null || true"""


def maintainer_scripts(debian: Path, package: str, name: str, extra: str = "") -> None:
    """``PACKAGE.postinst`` and ``PACKAGE.postrm`` from the templates, with the links of
    ``name``'s manifests into /etc/opt (cardbridge.sysinstall.manifest_links)."""
    links = sysinstall.manifest_links(name)
    for kind, function in (("postinst", "link_manifest"), ("postrm", "unlink_manifest")):
        text = (debian / f"maintscript.{kind}.in").read_text(encoding="utf-8")
        lines = "\n".join(f"    {function} {target} {link}" for link, target in links)
        text = text.replace("@PACKAGE@", package).replace("@EXTRA@", extra)
        text = text.replace("@MANIFEST_LINKS@", lines).replace("@MANIFEST_UNLINKS@", "    " + lines)
        (debian / f"{package}.{kind}").write_text(text, encoding="utf-8")


def main() -> None:
    stage, webeid, extension, debian = (Path(a) for a in sys.argv[1:5])
    date = dt.datetime.fromtimestamp(
        int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or dt.datetime.now().timestamp(), dt.UTC
    )
    files = sysinstall.package_files(extension=extension, parser=cli.build_parser(), date=date.date())
    sysinstall.write(files, stage)
    sysinstall.write(sysinstall.webeid_manifests(), webeid)
    maintainer_scripts(debian, "cardbridge", sysinstall.HOST_NAME, COMPILE)
    maintainer_scripts(debian, "cardbridge-webeid", sysinstall.WEBEID_HOST_NAME)
    (debian / "copyright").write_text(copyright_text(bundled=True), encoding="utf-8")
    (debian / "cardbridge-webeid.copyright").write_text(copyright_text(bundled=False), encoding="utf-8")


if __name__ == "__main__":
    main()
