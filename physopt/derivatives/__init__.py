"""Derivative engines for physics-informed losses: Zero Coordinate Shift (:mod:`.zcs`, with the FuncLoop and
DataVect baselines) and n-TangentProp (:mod:`.tangentprop`)."""
from .tangentprop import METHODS as TANGENTPROP_METHODS
from .tangentprop import nested_autograd_derivatives, ntangentprop, taylor_coefficients
from .zcs import (ENGINES, ZCS, DataVect, DerivativeEngine, FuncLoop, MultiIndex, OperatorFn, check_pointwise,
                  derivative_engine)

__all__ = ["ENGINES", "ZCS", "DataVect", "DerivativeEngine", "FuncLoop", "MultiIndex", "OperatorFn", "check_pointwise",
           "derivative_engine",
           "TANGENTPROP_METHODS", "nested_autograd_derivatives", "ntangentprop", "taylor_coefficients"]
