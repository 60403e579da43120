"""Search spaces: the architecture value type, the base classes and the generic spaces."""

from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import INACTIVE, ActiveIf, CategoricalSearchSpace, SearchSpace

__all__ = ["INACTIVE", "ActiveIf", "Architecture", "CategoricalSearchSpace", "SearchSpace"]
