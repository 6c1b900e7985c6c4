// MetalBench simulator: Metal Performance Primitives (tensor_ops, Metal 4)
// are not simulated; say so in one line instead of "file not found".
#pragma once
#error "MetalPerformancePrimitives (Metal 4 tensor ops) is not supported by the simulator — fix: guard its use with #ifndef __METALBENCH_SIM__, or run the kernel on a Mac"
