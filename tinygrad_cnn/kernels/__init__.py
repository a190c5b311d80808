"""The fast numpy kernels behind the conv and pooling primitives: window machinery
(`windows`), work buffers (`scratch`), im2col + BLAS convolution (`conv`), pooling loops
(`pool`) and the thread pool for memory-bound passes (`threads`). Their specification is
`tinygrad_cnn/reference.py`; the differentiable ops that call them are in `ops/`."""
