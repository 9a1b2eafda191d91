"""The Cog baseline's predictor: returns at once, so bench/run measures Cog's own HTTP and
dispatch path (POST /predictions), the part that would sit in front of a model."""

from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def predict(self, prompt: str = Input(description="prompt"), num_frames: int = Input(default=9)) -> str:
        return f"{num_frames} frames of: {prompt[:40]}"
