"""Pure math on flat weight vectors: layouts, curves, planes."""
