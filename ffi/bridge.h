/*
 * MetalBench bridge ABI: the one C interface every GPU backend implements.
 *
 *   ffi/metal_bridge.m  -> libmetal_bridge.dylib  (Metal, macOS arm64)
 *   ffi/sim/            -> libsim_bridge.so       (MSL simulator on the CPU)
 *
 * Both libraries export exactly the functions declared here, and nothing
 * else; src/backend/ffi_symbols.ts binds them and a test holds that table
 * against this header.
 *
 * Conventions
 * - Handles are opaque pointers. A handle is used by one thread at a time.
 * - Every fallible call returns an mb_status and, on failure, writes a
 *   NUL-terminated, human-readable message into `err` (at most err_cap
 *   bytes, truncated if longer). The message names the kernel where there
 *   is one; compile errors keep the compiler's file:line:col text.
 * - Option strings are "key=value" pairs separated by newlines; unknown
 *   keys are ignored so that one options string serves both backends.
 * - JSON written by the library is one object, UTF-8, NUL-terminated.
 */
#ifndef METALBENCH_BRIDGE_H
#define METALBENCH_BRIDGE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MB_ABI_VERSION 2

/* Status codes (int32_t). Stable: the TypeScript side maps them to errors. */
#define MB_OK 0
#define MB_E_ARGUMENT 1    /* bad argument: index out of range, null handle, bad size */
#define MB_E_UNAVAILABLE 2 /* backend cannot run here: no device, missing compiler */
#define MB_E_COMPILE 3     /* kernel source did not compile, or function not found */
#define MB_E_RESOURCE 4    /* allocation failed */
#define MB_E_EXECUTION 5   /* kernel faulted: command buffer error, simulator fault */
#define MB_E_TIMEOUT 6     /* kernel exceeded the time limit (endless loop?) */
#define MB_E_UNSUPPORTED 7 /* feature not offered by this backend */
#define MB_E_INTERNAL 8    /* bridge bug */
#define MB_E_DEVICE_LOST 9 /* the device is gone for this process (Metal: access revoked after
                              GPU faults or time-outs); nothing more can run on it */

/* Dispatch modes: how the grid passed to mb_command_dispatch is counted. */
#define MB_DISPATCH_THREADS 0      /* grid counts threads; edge groups may be partial */
#define MB_DISPATCH_THREADGROUPS 1 /* grid counts threadgroups */

typedef struct mb_device mb_device;
typedef struct mb_pipeline mb_pipeline;
typedef struct mb_buffer mb_buffer;
typedef struct mb_command mb_command;

/* Facts about a compiled pipeline (Metal: MTLComputePipelineState). */
typedef struct mb_pipeline_facts {
  uint32_t max_total_threads_per_threadgroup;
  uint32_t thread_execution_width;
  uint32_t static_threadgroup_memory_length; /* bytes */
  uint32_t reserved;                         /* zero */
} mb_pipeline_facts;

/* The ABI version this library implements (MB_ABI_VERSION). */
uint32_t mb_abi_version(void);

/* ---- device ------------------------------------------------------------ */

/* Open the backend's device. Options (all optional):
 *   sim:   cxx=<clang++ path>, shim_dir=<dir holding metal_stdlib>,
 *          runner=<sim runner executable>, cache_dir=<compiled kernels>,
 *          timeout_ms=<per-dispatch time limit>, workers=<parallelism>,
 *          sandbox=0|1 (default 1: kernels run under a seccomp allow-list)
 *   metal: timeout_ms=<per-dispatch limit; 0 waits for Metal's own watchdog> */
int32_t mb_device_open(const char *options, mb_device **out, char *err, uint64_t err_cap);

/* Describe the device as JSON:
 * {"backend":"metal"|"sim","name":str,"timer":"gpu-timestamps"|"cpu-monotonic",
 *  "gpu_cores":int (0 if unknown),"max_threads_per_threadgroup":int,
 *  "max_threadgroup_memory":int,"recommended_working_set":int (bytes, 0 if unknown),
 *  "simd_width":int,"family":str, ...backend-specific extra keys} */
int32_t mb_device_info(mb_device *dev, char *json, uint64_t json_cap, char *err, uint64_t err_cap);

void mb_device_close(mb_device *dev);

/* ---- pipelines --------------------------------------------------------- */

/* Compile `source` (MSL) and make a compute pipeline for kernel `function`.
 * Options: source_name=<file name used in messages>, include_dir=<dir for
 * #include "...">, fast_math=0|1 (default 0 on every backend: IEEE Inf/NaN and
 * precise math, as MLX compiles its kernels), language_version=<major.minor>,
 * metallib=<offline library to use instead of source, Metal only>,
 * function_constants=<name_or_index=value,...> (values: true/false or numbers,
 * each set with the type the kernel declares). */
int32_t mb_pipeline_compile(mb_device *dev, const char *source, const char *function,
                            const char *options, mb_pipeline **out, char *err, uint64_t err_cap);

int32_t mb_pipeline_facts_get(mb_pipeline *pipeline, mb_pipeline_facts *out, char *err,
                              uint64_t err_cap);

void mb_pipeline_free(mb_pipeline *pipeline);

/* ---- buffers (shared CPU/GPU storage) ---------------------------------- */

int32_t mb_buffer_new(mb_device *dev, uint64_t length, mb_buffer **out, char *err,
                      uint64_t err_cap);
int32_t mb_buffer_write(mb_buffer *buffer, uint64_t offset, const void *src, uint64_t length,
                        char *err, uint64_t err_cap);
int32_t mb_buffer_read(mb_buffer *buffer, uint64_t offset, void *dst, uint64_t length, char *err,
                       uint64_t err_cap);
void mb_buffer_free(mb_buffer *buffer);

/* ---- commands ---------------------------------------------------------- */

/* A command records a list of dispatch steps, like a compute encoder: set
 * the pipeline and bindings, then mb_command_dispatch records one step with
 * the bindings as they are at that moment. Steps run in order; each sees the
 * writes of the ones before it. */
int32_t mb_command_new(mb_device *dev, mb_command **out, char *err, uint64_t err_cap);
int32_t mb_command_set_pipeline(mb_command *cmd, mb_pipeline *pipeline, char *err,
                                uint64_t err_cap);
int32_t mb_command_set_buffer(mb_command *cmd, uint32_t index, mb_buffer *buffer, uint64_t offset,
                              char *err, uint64_t err_cap);
/* Inline constant data at [[buffer(index)]] (Metal: setBytes, up to 4 KB). */
int32_t mb_command_set_bytes(mb_command *cmd, uint32_t index, const void *bytes, uint64_t length,
                             char *err, uint64_t err_cap);
/* Length of the [[threadgroup(index)]] allocation, in bytes (multiple of 16). */
int32_t mb_command_set_threadgroup_memory(mb_command *cmd, uint32_t index, uint64_t length,
                                          char *err, uint64_t err_cap);
int32_t mb_command_dispatch(mb_command *cmd, uint32_t mode, uint32_t grid_x, uint32_t grid_y,
                            uint32_t grid_z, uint32_t group_x, uint32_t group_y, uint32_t group_z,
                            char *err, uint64_t err_cap);

/* Close the current launch: the steps recorded since the previous
 * mb_command_end_launch (or since the command was created) form one launch.
 * Steps recorded after the last boundary form one more launch; a command
 * with no boundary is a single launch. A command with L launches rotates:
 * launch j of a run (j = sample * batch + b, counted from 0 at the start of
 * every mb_command_run) executes launch (j mod L). The harness uses this to
 * rotate input and output buffers over the timed launches; which launch uses
 * which buffers is the harness's decision, not the backend's. */
int32_t mb_command_end_launch(mb_command *cmd, char *err, uint64_t err_cap);

/* Run: `samples` samples, each of `batch` launches (see
 * mb_command_end_launch) submitted together and waited for once. For
 * sample i:
 *   wall_ns[i]   host wall-clock time of the sample / batch, measured by the
 *                caller's process: from before the launches are encoded or
 *                sent until the wait for the last one returns
 *   device_ns[i] device time of the sample / batch (Metal: GPU time, see
 *                mb_device_info's "device_time"; sim: CPU time of the
 *                simulator runner process, all threads, read by the bridge
 *                from outside the runner)
 * No value reported by kernel code, or by a process that runs kernel code,
 * decides either time. Both arrays hold `samples` doubles. A fault or
 * time-out stops the run and returns MB_E_EXECUTION or MB_E_TIMEOUT; the
 * device stays usable unless MB_E_DEVICE_LOST is returned. */
int32_t mb_command_run(mb_command *cmd, uint32_t samples, uint32_t batch, double *wall_ns,
                       double *device_ns, char *err, uint64_t err_cap);

/* Run launch 0 once under a GPU capture written to trace_path (.gputrace,
 * must not exist yet). Metal only; sim returns MB_E_UNSUPPORTED. */
int32_t mb_command_capture(mb_command *cmd, const char *trace_path, char *err, uint64_t err_cap);

void mb_command_free(mb_command *cmd);

#ifdef __cplusplus
}
#endif

#endif /* METALBENCH_BRIDGE_H */
