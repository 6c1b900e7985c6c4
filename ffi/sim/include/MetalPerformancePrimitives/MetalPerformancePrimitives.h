// MetalBench simulator: Metal Performance Primitives (Metal 4 tensor ops).
// The part MLX's NAX kernels use (matmul2d on a SIMD group with cooperative
// tensors) is simulated; the rest is refused in one line (mb_sim_mpp.h, at
// the top level of the shim, where its content is part of the kernel cache key).
#pragma once
#include <mb_sim_mpp.h>
