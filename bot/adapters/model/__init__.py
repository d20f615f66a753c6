"""Models: litellm behind one small adapter, and the scripted provider."""

import os

# litellm fetches its price map from the internet at import unless told not to;
# runs must work offline, so every import of litellm goes through this package.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
