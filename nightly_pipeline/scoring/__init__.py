"""Lead scoring: features and an explainable score (pure, ``score``), and the rationale written
from the score's reasons (``rationale``)."""
