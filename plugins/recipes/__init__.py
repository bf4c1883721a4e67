"""The recipes shipped with kitpose, so ``extends: [base/synthetic.yaml]`` works anywhere."""
from pathlib import Path

from kitpose import hookimpl


@hookimpl
def kitpose_recipe_dirs():
    import kitpose_recipes

    return [Path(p) for p in kitpose_recipes.__path__ if Path(p).is_dir()]
