"""The packages of the wheel: meshc's own, and ``meshes/`` installed as ``meshc.examples``.

Everything else is in pyproject.toml. The example meshes and their handlers live in
``meshes/`` at the top of the repository (next to ``generated/``, which compiles them),
but a wheel must not install a top-level package of that name: it would shadow a
user's own ``meshes/`` folder, or be shadowed by it. The mapping below installs the
folder under meshc's name instead; package discovery in pyproject.toml cannot rename
a folder, hence this file.
"""

from setuptools import find_packages, setup

EXAMPLES = "meshc.examples"
examples = [
    EXAMPLES + name.removeprefix("meshes") for name in find_packages(include=["meshes", "meshes.*"])
]
setup(
    packages=find_packages(include=["meshc", "meshc.*"]) + examples,
    package_dir={EXAMPLES: "meshes"},
)
