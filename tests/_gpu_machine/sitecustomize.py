"""Put on PYTHONPATH, makes this interpreter look like the GPU machine the demo's `--preset gpu` runs on:
pycocotools, pycocoevalcap, fastapi, dask and openai cannot be imported (rasterio and pyproj, which the
synthetic world needs, stay: the lead brings their wheels)."""

import sys

ABSENT = {"pycocotools", "pycocoevalcap", "fastapi", "dask", "distributed", "openai"}


class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r} (absent on the GPU machine)", name=name)
        return None


sys.meta_path.insert(0, _Absent())
