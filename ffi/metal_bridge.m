/*
 * MetalBench bridge on Apple Metal: the implementation of ffi/bridge.h for
 * macOS on Apple silicon, built into libmetal_bridge.dylib (see ffi/Makefile).
 *
 * Build target macOS 12.0 (the SDK reachable on Linux for checking); run
 * target macOS 14+ (MLX needs it). Anything newer than the 12.0 SDK is
 * reached at run time through respondsToSelector: and key-value coding, with
 * enum values passed as numbers, so the same dylib builds against 12.0 and
 * uses newer API where the OS has it. No @available (it needs compiler-rt's
 * __isPlatformVersionAtLeast, absent from a cross link).
 *
 * Rules every exported function follows
 * - ARC; the body runs inside @autoreleasepool and @try: an Objective-C
 *   exception never crosses the C ABI, it becomes MB_E_INTERNAL with its
 *   reason (built with -fobjc-arc-exceptions so ARC releases on unwind).
 * - Handles are Objective-C objects handed out with __bridge_retained and
 *   taken back with CFBridgingRelease in the matching *_free/close. Objects
 *   that need another keep it alive by a strong reference (a pipeline its
 *   device, a recorded step its buffers), so freeing handles in any order is
 *   memory-safe. A null handle is MB_E_ARGUMENT; a handle of the wrong kind
 *   is caught by an isKindOfClass: check.
 * - Errors are one line, NUL-terminated, cut at a UTF-8 character boundary
 *   to fit err_cap. The one exception is a compile failure: its first line
 *   is the summary ("kernel relu_f32: relu.metal:12:5: error: ..."), and
 *   the compiler's full diagnostics follow, one per line.
 *
 * Timing design (mb_command_run; the definitions are bridge.h's)
 * - A sample is ONE command buffer holding `batch` launches (launch j of the
 *   run executes launch j mod L, see mb_command_end_launch), committed and
 *   waited for once. Each recorded step is its own compute pass (encoder):
 *   Apple GPUs sample timestamps only at pass boundaries, consecutive passes
 *   on tracked shared buffers are ordered by Metal's hazard tracking (each
 *   step sees the writes of the ones before it), and a failing pass can be
 *   named.
 * - wall_ns: CLOCK_UPTIME_RAW (the clock behind mach_absolute_time and
 *   Python's perf_counter on macOS) read before the command buffer is made
 *   and encoded, and after the wait returns; divided by batch. MLX's sample
 *   covers its calls (encoding included), commit and wait the same way.
 * - device_ns, kind "gpu-pass-timestamps" (mb_device_info's "device_time")
 *   where the GPU samples timestamps at stage boundaries (every Apple
 *   silicon GPU): a counter sample buffer takes a timestamp at the start and
 *   end of every pass; a sample's device time is the union of its passes'
 *   [start, end] intervals (the GPU time inside the dispatches, without the
 *   command buffer's scheduling or the gaps between passes), divided by
 *   batch. GPU ticks become ns by a ratio calibrated against CLOCK_UPTIME_RAW
 *   over the device's lifetime (mb_ns_per_tick). Elsewhere, or with the
 *   device option device_time=command-buffer, the kind is
 *   "gpu-command-buffer": (GPUEndTime - GPUStartTime) / batch. A sample whose
 *   counters did not resolve takes the command buffer's span and is counted
 *   in "device_time_fallbacks".
 * - Timed command buffers carry no per-encoder error reporting (its header
 *   warns of CPU, GPU and memory overhead). A sample that faults is run once
 *   more with MTLCommandBufferErrorOptionEncoderExecutionStatus, to name the
 *   failing pass.
 * - A command buffer that outlives timeout_ms is kept (pending) and waited
 *   for before anything else runs on the device, so the next kernel is never
 *   timed while the GPU still runs the last one; access revoked (after GPU
 *   faults or time-outs, macOS stops running a process's work) makes the
 *   device lost: MB_E_DEVICE_LOST from then on, naming the earlier failures.
 */

#import <Foundation/Foundation.h>
#import <Metal/Metal.h>
#include <CoreFoundation/CoreFoundation.h>
#include <IOKit/IOKitLib.h>
#include <dispatch/dispatch.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The ABI functions are the only symbols with default visibility. */
#pragma GCC visibility push(default)
#include "bridge.h"
#pragma GCC visibility pop

#define MB_HIDDEN __attribute__((visibility("hidden")))

/* ---- limits and constants ------------------------------------------------ */

/* Metal's argument table for a compute function: 31 buffers, and up to 31
 * threadgroup memory arguments. */
#define MB_MAX_BUFFER_INDEX 31u
#define MB_MAX_THREADGROUP_INDEX 31u
/* setBytes: is for data of at most 4 KB. */
#define MB_MAX_INLINE_BYTES 4096u
/* setThreadgroupMemoryLength: takes multiples of 16 bytes. */
#define MB_THREADGROUP_GRANULE 16u
/* #include "..." nesting limit when include_dir is given. */
#define MB_MAX_INCLUDE_DEPTH 16
/* The longest wait timeout_ms can ask for, per sample (one day). */
#define MB_MAX_WAIT_MS (24ull * 3600ull * 1000ull)
/* How long the next run waits for a command buffer that timed out to end
 * (Metal's watchdog stops a stuck one) before the device counts as lost. */
#define MB_PENDING_WAIT_MS 60000ull
/* Timestamps per counter sample buffer (32 KB of 8-byte samples): two per
 * pass; a sample with more passes uses several buffers. */
#define MB_MAX_COUNTER_SAMPLES 4096u
/* The shortest host-time span the GPU tick period is calibrated over. */
#define MB_CALIBRATION_MIN_NS 10000000ull
/* Earlier GPU failures named when the device is lost. */
#define MB_FAILURES_KEPT 4u

/* MTLGPUFamily raw values; the 12.0 SDK names Apple1..Apple7 only. */
#define MB_GPU_FAMILY_APPLE4 1004
#define MB_GPU_FAMILY_APPLE7 1007
#define MB_GPU_FAMILY_APPLE10 1010
#define MB_GPU_FAMILY_MAC2 2002
#define MB_GPU_FAMILY_METAL3 5001

/* MTLMathMode / MTLMathFloatingPointFunctions raw values (macOS 15 SDK). */
#define MB_MATH_MODE_SAFE 0
#define MB_MATH_MODE_FAST 2
#define MB_MATH_FP_FUNCTIONS_FAST 0
#define MB_MATH_FP_FUNCTIONS_PRECISE 1

/* MTLDataType raw values newer than the 12.0 SDK (macOS 14: bfloat). */
#define MB_DATA_TYPE_BFLOAT 121

/* MTLBindingType raw values (macOS 13 SDK); equal to MTLArgumentType's. */
#define MB_BINDING_BUFFER 0
#define MB_BINDING_THREADGROUP 1
#define MB_BINDING_TEXTURE 2
#define MB_BINDING_SAMPLER 3

/* ---- error text ------------------------------------------------------------ */

static void mb_clear_err(char *err, uint64_t cap) {
  if (err && cap > 0) err[0] = '\0';
}

/* Collapse a message onto one line: newlines and tabs become single spaces. */
static NSString *mb_one_line(NSString *text) {
  NSArray<NSString *> *parts =
      [text componentsSeparatedByCharactersInSet:[NSCharacterSet newlineCharacterSet]];
  NSMutableArray<NSString *> *kept = [NSMutableArray arrayWithCapacity:parts.count];
  for (NSString *p in parts) {
    NSString *t = [p stringByTrimmingCharactersInSet:[NSCharacterSet whitespaceCharacterSet]];
    if (t.length > 0) [kept addObject:t];
  }
  NSString *joined = [kept componentsJoinedByString:@" "];
  return [joined stringByReplacingOccurrencesOfString:@"\t" withString:@" "];
}

/* Copy `text` into dst as UTF-8, NUL-terminated, cut to fit cap at a
 * character boundary. */
static void mb_write_text(char *dst, uint64_t cap, NSString *text, BOOL oneLine) {
  if (!dst || cap == 0) return;
  if (!text) text = @"(no message)";
  if (oneLine) text = mb_one_line(text);
  const char *utf8 = text.UTF8String;
  if (!utf8) utf8 = "(message not representable as UTF-8)";
  size_t n = strlen(utf8);
  if ((uint64_t)n > cap - 1) {
    n = (size_t)(cap - 1);
    /* utf8[n] is the first byte left out; if it continues a character, the
     * character started before n: back up to its first byte. */
    while (n > 0 && (((unsigned char)utf8[n]) & 0xC0u) == 0x80u) n--;
  }
  memcpy(dst, utf8, n);
  dst[n] = '\0';
}

static int32_t mb_fail_text(char *err, uint64_t cap, int32_t status, NSString *text,
                            BOOL oneLine) {
  mb_write_text(err, cap, text, oneLine);
  return status;
}

static int32_t mb_fail(char *err, uint64_t cap, int32_t status, NSString *format, ...)
    NS_FORMAT_FUNCTION(4, 5);
static int32_t mb_fail(char *err, uint64_t cap, int32_t status, NSString *format, ...) {
  va_list ap;
  va_start(ap, format);
  NSString *text = [[NSString alloc] initWithFormat:format arguments:ap];
  va_end(ap);
  return mb_fail_text(err, cap, status, text, YES);
}

static int32_t mb_exception(char *err, uint64_t cap, const char *where, NSException *e) {
  return mb_fail(err, cap, MB_E_INTERNAL, @"%s: internal error: Objective-C exception %@: %@",
                 where, e.name, e.reason ?: @"(no reason)");
}

/* Every fallible entry point: clear err, pool, catch everything. */
#define MB_BEGIN                                                                                   \
  mb_clear_err(err, err_cap);                                                                      \
  @autoreleasepool {                                                                               \
    @try {
#define MB_END                                                                                     \
  }                                                                                                \
  @catch (NSException * mb_e) {                                                                    \
    return mb_exception(err, err_cap, __func__, mb_e);                                             \
  }                                                                                                \
  @catch (id mb_e) {                                                                               \
    return mb_fail(err, err_cap, MB_E_INTERNAL, @"%s: internal error: exception %@", __func__,     \
                   mb_e);                                                                          \
  }                                                                                                \
  }                                                                                                \
  return MB_E_INTERNAL;

/* void entry points (free/close) swallow exceptions: nothing to report to. */
#define MB_VOID_BEGIN                                                                              \
  @autoreleasepool {                                                                               \
    @try {
#define MB_VOID_END                                                                                \
  }                                                                                                \
  @catch (id mb_e) {                                                                               \
    (void)mb_e;                                                                                    \
  }                                                                                                \
  }

/* ---- small helpers ----------------------------------------------------------- */

static NSString *mb_string(const char *s) {
  return s ? [NSString stringWithUTF8String:s] : nil; /* nil on invalid UTF-8 */
}

/* "key=value" lines; unknown keys are kept (and ignored by the caller). */
static int32_t mb_parse_options(const char *options, NSDictionary<NSString *, NSString *> **out,
                                char *err, uint64_t cap) {
  NSMutableDictionary<NSString *, NSString *> *dict = [NSMutableDictionary dictionary];
  *out = dict;
  if (!options || !options[0]) return MB_OK;
  NSString *all = mb_string(options);
  if (!all) return mb_fail(err, cap, MB_E_ARGUMENT, @"the options string is not valid UTF-8");
  for (NSString *raw in [all componentsSeparatedByString:@"\n"]) {
    NSString *line = raw;
    if ([line hasSuffix:@"\r"]) line = [line substringToIndex:line.length - 1];
    NSRange eq = [line rangeOfString:@"="];
    if (eq.location == NSNotFound) continue;
    NSString *key = [[line substringToIndex:eq.location]
        stringByTrimmingCharactersInSet:[NSCharacterSet whitespaceCharacterSet]];
    if (key.length == 0) continue;
    dict[key] = [line substringFromIndex:eq.location + 1];
  }
  return MB_OK;
}

static BOOL mb_parse_u64(NSString *s, uint64_t *out) {
  const char *c = s.UTF8String;
  if (!c || !c[0] || c[0] == '-' || c[0] == '+' || c[0] == ' ') return NO;
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(c, &end, 10);
  if (errno != 0 || !end || *end != '\0') return NO;
  *out = (uint64_t)v;
  return YES;
}

static int mb_parse_bool(NSString *s) { /* 1, 0, or -1 when not a boolean */
  NSString *t = s.lowercaseString;
  if ([t isEqualToString:@"1"] || [t isEqualToString:@"true"] || [t isEqualToString:@"yes"])
    return 1;
  if ([t isEqualToString:@"0"] || [t isEqualToString:@"false"] || [t isEqualToString:@"no"])
    return 0;
  return -1;
}

static uint64_t mb_now_ns(void) { return clock_gettime_nsec_np(CLOCK_UPTIME_RAW); }

static BOOL mb_os_at_least(NSInteger major, NSInteger minor) {
  NSOperatingSystemVersion v = {major, minor, 0};
  return [[NSProcessInfo processInfo] isOperatingSystemAtLeastVersion:v];
}

static uint32_t mb_clamp_u32(NSUInteger v) { return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v; }

/* supportsFamily: with a raw MTLGPUFamily value (newer than the 12.0 SDK's
 * names); NO if Metal objects to the value. */
static BOOL mb_supports_family(id<MTLDevice> device, NSInteger family) {
  @try {
    return [device supportsFamily:(MTLGPUFamily)family];
  } @catch (id e) {
    (void)e;
    return NO;
  }
}

/* An environment variable set to something other than "" or "0". */
static BOOL mb_env_on(const char *name) {
  const char *v = getenv(name);
  return v && v[0] && strcmp(v, "0") != 0;
}

/* The timestamp counter set, if the GPU samples it at pass (stage)
 * boundaries; nil otherwise. */
static id<MTLCounterSet> mb_timestamp_counters(id<MTLDevice> device) {
  @try {
    if (![device respondsToSelector:@selector(supportsCounterSampling:)] ||
        ![device supportsCounterSampling:MTLCounterSamplingPointAtStageBoundary])
      return nil;
    for (id<MTLCounterSet> set in device.counterSets) {
      if (![set.name isEqualToString:MTLCommonCounterSetTimestamp]) continue;
      for (id<MTLCounter> counter in set.counters)
        if ([counter.name isEqualToString:MTLCommonCounterTimestamp]) return set;
    }
  } @catch (id e) {
    (void)e;
  }
  return nil;
}

/* Metal layers that slow every call, on in this process: a run timed with
 * them on is not comparable with one without. */
static NSArray<NSString *> *mb_layers(void) {
  NSMutableArray<NSString *> *layers = [NSMutableArray array];
  BOOL capture = mb_env_on("MTL_CAPTURE_ENABLED");
  @try {
    capture = capture || [[MTLCaptureManager sharedCaptureManager]
                             supportsDestination:MTLCaptureDestinationGPUTraceDocument];
  } @catch (id e) {
    (void)e;
  }
  if (capture) [layers addObject:@"capture"];
  if (mb_env_on("MTL_DEBUG_LAYER") || mb_env_on("METAL_DEVICE_WRAPPER_TYPE"))
    [layers addObject:@"api-validation"];
  if (mb_env_on("MTL_SHADER_VALIDATION")) [layers addObject:@"shader-validation"];
  return layers;
}

/* ---- handle classes -------------------------------------------------------- */

MB_HIDDEN @interface MetalBenchBridgeDevice : NSObject
@property(strong, nonatomic) id<MTLDevice> device;
/* Replaced after a failed command buffer; atomic so that a run on a worker
 * thread and a reader elsewhere each see a whole reference. */
@property(strong, atomic) id<MTLCommandQueue> queue;
@property(assign, nonatomic) uint64_t timeoutMs; /* per dispatch; 0 = wait for Metal */
@property(assign, nonatomic) BOOL nonUniformThreadgroups;
@property(assign, atomic) uint32_t simdWidth; /* 0 until probed */
@property(copy, atomic) NSString *simdWidthSource;
/* Timestamp counters for device_ns; nil: the command buffer's span. */
@property(strong, nonatomic) id<MTLCounterSet> timestampCounters;
/* The first (GPU tick, host ns) pair of the tick-period calibration. */
@property(assign, atomic) uint64_t calibrationTicks;
@property(assign, atomic) uint64_t calibrationNs;
@property(assign, atomic) double nsPerTick; /* 0 until calibrated */
@property(assign, atomic) uint64_t deviceTimeFallbacks;
/* A command buffer that outlived timeout_ms, and what it ran. */
@property(strong, atomic) id<MTLCommandBuffer> pending;
@property(strong, atomic) dispatch_semaphore_t pendingDone;
@property(copy, atomic) NSString *pendingKernels;
@property(assign, atomic) uint64_t pendingSinceNs;
/* Set once the device is lost for this process: the message every later
 * run returns with MB_E_DEVICE_LOST. */
@property(copy, atomic) NSString *lostMessage;
/* The last GPU failures ("softmax (time-out)"), named when the device is lost. */
@property(strong, nonatomic) NSMutableArray<NSString *> *failures;
@end
@implementation MetalBenchBridgeDevice
@end

/* One argument of a kernel, from pipeline reflection. */
MB_HIDDEN @interface MetalBenchBridgeArg : NSObject
@property(assign, nonatomic) NSInteger kind; /* MB_BINDING_* */
@property(assign, nonatomic) NSUInteger index;
@property(copy, nonatomic) NSString *name;
@property(assign, nonatomic) BOOL used;
@property(assign, nonatomic) NSUInteger bufferAlignment; /* 0 if unknown */
@property(assign, nonatomic) NSUInteger bufferDataSize;  /* bytes of the pointee; 0 if unknown */
@end
@implementation MetalBenchBridgeArg
@end

MB_HIDDEN @interface MetalBenchBridgePipeline : NSObject
@property(strong, nonatomic) MetalBenchBridgeDevice *owner;
@property(strong, nonatomic) id<MTLComputePipelineState> state;
@property(copy, nonatomic) NSString *functionName;
@property(copy, nonatomic) NSString *sourceName;
@property(copy, nonatomic) NSArray<MetalBenchBridgeArg *> *args; /* nil if reflection failed */
@end
@implementation MetalBenchBridgePipeline
@end

MB_HIDDEN @interface MetalBenchBridgeBuffer : NSObject
@property(strong, nonatomic) MetalBenchBridgeDevice *owner;
@property(strong, nonatomic) id<MTLBuffer> buffer;
@property(assign, nonatomic) uint64_t length; /* the caller's length (buffer may be longer) */
@end
@implementation MetalBenchBridgeBuffer
@end

/* What sits at one [[buffer(i)]]: a buffer and offset, or inline bytes. */
MB_HIDDEN @interface MetalBenchBridgeSlot : NSObject
@property(strong, nonatomic) MetalBenchBridgeBuffer *buffer; /* nil for inline bytes */
@property(assign, nonatomic) uint64_t offset;
@property(copy, nonatomic) NSData *bytes; /* nil for a buffer */
@end
@implementation MetalBenchBridgeSlot
@end

/* One recorded dispatch, with the bindings as they were when recorded. */
MB_HIDDEN @interface MetalBenchBridgeStep : NSObject
@property(strong, nonatomic) MetalBenchBridgePipeline *pipeline;
@property(copy, nonatomic) NSDictionary<NSNumber *, MetalBenchBridgeSlot *> *slots;
@property(copy, nonatomic) NSDictionary<NSNumber *, NSNumber *> *threadgroupLengths;
@property(assign, nonatomic) uint32_t mode;
@property(assign, nonatomic) MTLSize grid;
@property(assign, nonatomic) MTLSize group;
@property(copy, nonatomic) NSString *label; /* "launch K step N: kernel" */
@end
@implementation MetalBenchBridgeStep
@end

MB_HIDDEN @interface MetalBenchBridgeCommand : NSObject
@property(strong, nonatomic) MetalBenchBridgeDevice *owner;
@property(strong, nonatomic) MetalBenchBridgePipeline *pipeline;
@property(strong, nonatomic) NSMutableDictionary<NSNumber *, MetalBenchBridgeSlot *> *slots;
@property(strong, nonatomic) NSMutableDictionary<NSNumber *, NSNumber *> *threadgroupLengths;
@property(strong, nonatomic) NSMutableArray<MetalBenchBridgeStep *> *steps;
/* steps[.. launchEnds[k]) closes launch k (mb_command_end_launch). */
@property(strong, nonatomic) NSMutableArray<NSNumber *> *launchEnds;
/* Counter sample buffers and pass descriptors, reused by every sample. */
@property(strong, nonatomic) NSMutableArray<id<MTLCounterSampleBuffer>> *sampleBuffers;
@property(strong, nonatomic) NSMutableArray<MTLComputePassDescriptor *> *passDescriptors;
@end
@implementation MetalBenchBridgeCommand
@end

/* Borrow a handle as its object, checking null and kind. */
#define MB_HANDLE(var, Type, handle, what)                                                         \
  if (!(handle))                                                                                   \
    return mb_fail(err, err_cap, MB_E_ARGUMENT, @"%s: the %s handle is null", __func__, what);     \
  Type *var = (__bridge Type *)(void *)(handle);                                                   \
  if (![var isKindOfClass:[Type class]])                                                           \
    return mb_fail(err, err_cap, MB_E_ARGUMENT, @"%s: the handle passed is not a %s handle",       \
                   __func__, what);

/* ---- device facts ----------------------------------------------------------- */

/* gpu-core-count of an IORegistry entry or its parents; 0 if absent. */
static int64_t mb_core_count_of(io_registry_entry_t entry) {
  int64_t cores = 0;
  CFTypeRef value =
      IORegistryEntrySearchCFProperty(entry, kIOServicePlane, CFSTR("gpu-core-count"),
                                      kCFAllocatorDefault,
                                      kIORegistryIterateRecursively | kIORegistryIterateParents);
  if (value) {
    if (CFGetTypeID(value) == CFNumberGetTypeID()) {
      int64_t v = 0;
      if (CFNumberGetValue((CFNumberRef)value, kCFNumberSInt64Type, &v)) cores = v;
    }
    CFRelease(value);
  }
  return (cores > 0 && cores <= 4096) ? cores : 0;
}

/* The GPU core count: the device's own registry entry first (registryID),
 * then any AGXAccelerator service. 0 if IOKit does not say. */
static int64_t mb_gpu_core_count(uint64_t registryID) {
  int64_t cores = 0;
  if (registryID != 0) {
    CFMutableDictionaryRef match = IORegistryEntryIDMatching(registryID);
    if (match) {
      io_service_t service = IOServiceGetMatchingService(kIOMainPortDefault, match); /* consumes */
      if (service != IO_OBJECT_NULL) {
        cores = mb_core_count_of(service);
        IOObjectRelease(service);
      }
    }
  }
  if (cores == 0) {
    CFMutableDictionaryRef match = IOServiceMatching("AGXAccelerator");
    io_iterator_t it = IO_OBJECT_NULL;
    if (match && IOServiceGetMatchingServices(kIOMainPortDefault, match, &it) == KERN_SUCCESS) {
      io_object_t entry;
      while ((entry = IOIteratorNext(it)) != IO_OBJECT_NULL) {
        if (cores == 0) cores = mb_core_count_of(entry);
        IOObjectRelease(entry);
      }
      IOObjectRelease(it);
    }
  }
  return cores;
}

/* Highest Apple GPU family (Apple7..Apple10), asking only about families the
 * running OS can know: Apple8 from macOS 13, Apple9 from 14, Apple10 from 26.
 * 0 if below Apple7 (no Apple silicon Mac is). */
static NSInteger mb_apple_family(id<MTLDevice> device) {
  for (NSInteger f = MB_GPU_FAMILY_APPLE10; f >= MB_GPU_FAMILY_APPLE7; f--) {
    if (f == 1010 && !mb_os_at_least(26, 0)) continue;
    if (f == 1009 && !mb_os_at_least(14, 0)) continue;
    if (f == 1008 && !mb_os_at_least(13, 0)) continue;
    if (mb_supports_family(device, f)) return f - 1000;
  }
  return 0;
}

/* MTLDevice.architecture.name (macOS 14+), e.g. "applegpu_g13s"; nil before. */
static NSString *mb_architecture_name(id<MTLDevice> device) {
  @try {
    NSObject *dev = (NSObject *)device;
    if (![dev respondsToSelector:NSSelectorFromString(@"architecture")]) return nil;
    NSObject *arch = [dev valueForKey:@"architecture"];
    if (!arch || ![arch respondsToSelector:NSSelectorFromString(@"name")]) return nil;
    NSObject *name = [arch valueForKey:@"name"];
    return [name isKindOfClass:[NSString class]] ? (NSString *)name : nil;
  } @catch (id e) {
    (void)e;
    return nil;
  }
}

/* ---- version ---------------------------------------------------------------- */

uint32_t mb_abi_version(void) { return MB_ABI_VERSION; }

/* ---- device ------------------------------------------------------------------ */

int32_t mb_device_open(const char *options, mb_device **out, char *err, uint64_t err_cap) {
  MB_BEGIN
  if (!out) return mb_fail(err, err_cap, MB_E_ARGUMENT, @"mb_device_open: out is null");
  *out = NULL;
  NSDictionary<NSString *, NSString *> *opts = nil;
  int32_t st = mb_parse_options(options, &opts, err, err_cap);
  if (st != MB_OK) return st;

  uint64_t timeoutMs = 0;
  if (opts[@"timeout_ms"] && !mb_parse_u64(opts[@"timeout_ms"], &timeoutMs))
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"timeout_ms=%@ is not a whole number of milliseconds", opts[@"timeout_ms"]);

  NSString *deviceTime = opts[@"device_time"] ?: @"auto";
  if (![deviceTime isEqualToString:@"auto"] && ![deviceTime isEqualToString:@"command-buffer"])
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"device_time=%@: use auto (pass timestamps where the GPU has them) or "
                   @"command-buffer",
                   deviceTime);

  /* Metal's API validation layer (MTL_DEBUG_LAYER=1) aborts the process on
   * misuse unless told otherwise; the bridge checks what it can before
   * Metal sees it, and asks the layer to log the rest rather than abort,
   * so a bad kernel never takes the harness down. */
  if (mb_env_on("MTL_DEBUG_LAYER") || mb_env_on("METAL_DEVICE_WRAPPER_TYPE"))
    setenv("MTL_DEBUG_LAYER_ERROR_MODE", "nslog", 0);

  id<MTLDevice> device = MTLCreateSystemDefaultDevice();
  if (!device) {
    /* Command-line processes normally get the default device; fall back to
     * the first device Metal lists. */
    NSArray<id<MTLDevice>> *all = MTLCopyAllDevices();
    if (all.count > 0) device = all[0];
  }
  if (!device)
    return mb_fail(err, err_cap, MB_E_UNAVAILABLE,
                   @"no Metal device: MTLCreateSystemDefaultDevice() returned nil (Metal needs a "
                   @"Mac with Apple silicon; it is not available in most VMs); use --backend sim");

  id<MTLCommandQueue> queue = [device newCommandQueue];
  if (!queue)
    return mb_fail(err, err_cap, MB_E_RESOURCE, @"Metal device %@: cannot create a command queue",
                   device.name);

  MetalBenchBridgeDevice *d = [MetalBenchBridgeDevice new];
  d.device = device;
  d.queue = queue;
  d.timeoutMs = timeoutMs;
  /* dispatchThreads: (non-uniform threadgroups) needs Apple4+ or Mac2; every
   * Apple silicon GPU is Apple7+. */
  d.nonUniformThreadgroups = mb_supports_family(device, MB_GPU_FAMILY_APPLE4) ||
                             mb_supports_family(device, MB_GPU_FAMILY_MAC2);
  d.timestampCounters =
      [deviceTime isEqualToString:@"auto"] ? mb_timestamp_counters(device) : nil;
  if (d.timestampCounters) { /* the first pair of the tick-period calibration */
    MTLTimestamp cpu = 0, gpu = 0;
    [device sampleTimestamps:&cpu gpuTimestamp:&gpu];
    d.calibrationTicks = gpu;
    d.calibrationNs = mb_now_ns();
  }
  d.failures = [NSMutableArray array];
  *out = (__bridge_retained mb_device *)d;
  return MB_OK;
  MB_END
}

/* threadExecutionWidth of a trivial kernel: the SIMD-group width. */
static void mb_probe_simd_width(MetalBenchBridgeDevice *d) {
  if (d.simdWidth != 0) return;
  uint32_t width = 0;
  @try {
    NSString *src = @"#include <metal_stdlib>\n"
                    @"using namespace metal;\n"
                    @"kernel void metalbench_probe(device uint *o [[buffer(0)]],\n"
                    @"                             uint i [[thread_position_in_grid]]) {\n"
                    @"  o[i] = i;\n"
                    @"}\n";
    NSError *error = nil;
    id<MTLLibrary> lib = [d.device newLibraryWithSource:src options:nil error:&error];
    id<MTLFunction> fn = [lib newFunctionWithName:@"metalbench_probe"];
    id<MTLComputePipelineState> pso =
        fn ? [d.device newComputePipelineStateWithFunction:fn error:&error] : nil;
    if (pso) width = mb_clamp_u32(pso.threadExecutionWidth);
  } @catch (id e) {
    (void)e;
  }
  if (width > 0) {
    d.simdWidthSource = @"pipeline";
    d.simdWidth = width;
  } else {
    d.simdWidthSource = @"assumed"; /* 32 on every Apple GPU so far */
    d.simdWidth = 32;
  }
}

int32_t mb_device_info(mb_device *dev, char *json, uint64_t json_cap, char *err,
                       uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(d, MetalBenchBridgeDevice, dev, "device")
  if (!json || json_cap == 0)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"mb_device_info: the JSON buffer is null or empty");
  json[0] = '\0';
  id<MTLDevice> device = d.device;
  mb_probe_simd_width(d);

  NSInteger family = mb_apple_family(device);
  MTLSize maxGroup = device.maxThreadsPerThreadgroup;
  NSMutableDictionary *info = [NSMutableDictionary dictionary];
  info[@"backend"] = @"metal";
  info[@"name"] = device.name ?: @"";
  info[@"timer"] = @"gpu-timestamps";
  info[@"gpu_cores"] = @(mb_gpu_core_count(device.registryID));
  /* Apple GPUs: 1024 per dimension and 1024 in total; the pipeline's own
   * maxTotalThreadsPerThreadgroup may be lower. */
  info[@"max_threads_per_threadgroup"] = @(maxGroup.width);
  info[@"max_threadgroup_memory"] = @(device.maxThreadgroupMemoryLength);
  info[@"recommended_working_set"] = @(device.recommendedMaxWorkingSetSize);
  info[@"simd_width"] = @(d.simdWidth);
  info[@"family"] = family > 0 ? [NSString stringWithFormat:@"Apple%ld", (long)family] : @"unknown";
  /* extra keys */
  NSString *arch = mb_architecture_name(device);
  info[@"architecture"] = arch ?: @"";
  info[@"has_unified_memory"] = @(device.hasUnifiedMemory);
  info[@"max_buffer_length"] = @(device.maxBufferLength);
  info[@"max_threads_per_threadgroup_xyz"] =
      @[ @(maxGroup.width), @(maxGroup.height), @(maxGroup.depth) ];
  info[@"simd_width_source"] = d.simdWidthSource ?: @"assumed";
  info[@"non_uniform_threadgroups"] = @(d.nonUniformThreadgroups);
  info[@"metal3"] = @((BOOL)(mb_os_at_least(13, 0) &&
                             mb_supports_family(device, MB_GPU_FAMILY_METAL3)));
  /* A string: registry IDs need not fit a JavaScript number. */
  info[@"registry_id"] =
      [NSString stringWithFormat:@"0x%llx", (unsigned long long)device.registryID];
  info[@"os_version"] = [NSProcessInfo processInfo].operatingSystemVersionString ?: @"";
  info[@"timeout_ms"] = @(d.timeoutMs);
  /* What device_ns measures (see "Timing design"), and how it was converted. */
  info[@"device_time"] = d.timestampCounters ? @"gpu-pass-timestamps" : @"gpu-command-buffer";
  info[@"gpu_ns_per_tick"] = @(d.nsPerTick);
  info[@"device_time_fallbacks"] = @(d.deviceTimeFallbacks);
  info[@"layers"] = mb_layers();
  info[@"lost"] = @(d.lostMessage != nil);

  NSError *error = nil;
  NSData *data = [NSJSONSerialization dataWithJSONObject:info
                                                 options:NSJSONWritingSortedKeys
                                                   error:&error];
  if (!data)
    return mb_fail(err, err_cap, MB_E_INTERNAL, @"device info: JSON encoding failed: %@",
                   error.localizedDescription);
  if ((uint64_t)data.length + 1 > json_cap)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"device info: the JSON buffer holds %llu bytes, %llu are needed",
                   (unsigned long long)json_cap, (unsigned long long)data.length + 1);
  memcpy(json, data.bytes, data.length);
  json[data.length] = '\0';
  return MB_OK;
  MB_END
}

void mb_device_close(mb_device *dev) {
  if (!dev) return;
  MB_VOID_BEGIN
  /* Drops the caller's reference; pipelines, buffers and commands still
   * alive keep the device. */
  (void)CFBridgingRelease(dev);
  MB_VOID_END
}

/* ---- compiling ---------------------------------------------------------------- */

/* MTLLanguageVersion for "major.minor", 0 if unknown; *minOS gets the macOS
 * release that first supports it. */
static NSUInteger mb_language_version(NSString *s, NSInteger *minOSMajor) {
  static const struct {
    const char *text;
    unsigned major, minor;
    NSInteger os;
  } table[] = {
      {"1.1", 1, 1, 10}, {"1.2", 1, 2, 10}, {"2.0", 2, 0, 10}, {"2.1", 2, 1, 10},
      {"2.2", 2, 2, 10}, {"2.3", 2, 3, 11}, {"2.4", 2, 4, 12}, {"3.0", 3, 0, 13},
      {"3.1", 3, 1, 14}, {"3.2", 3, 2, 15}, {"4.0", 4, 0, 26},
  };
  const char *c = s.UTF8String;
  if (!c) return 0;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (strcmp(c, table[i].text) == 0) {
      *minOSMajor = table[i].os;
      return ((NSUInteger)table[i].major << 16) + table[i].minor;
    }
  }
  return 0;
}

/* A file name for a #line directive: backslash and quote escaped. */
static NSString *mb_line_name(NSString *name) {
  NSString *s = [name stringByReplacingOccurrencesOfString:@"\\" withString:@"\\\\"];
  return [s stringByReplacingOccurrencesOfString:@"\"" withString:@"\\\""];
}

/* The target of a `#include "name"` line, or nil. */
static NSString *mb_quoted_include(NSString *line) {
  NSScanner *sc = [NSScanner scannerWithString:line];
  sc.charactersToBeSkipped = nil;
  NSCharacterSet *ws = [NSCharacterSet whitespaceCharacterSet];
  [sc scanCharactersFromSet:ws intoString:NULL];
  if (![sc scanString:@"#" intoString:NULL]) return nil;
  [sc scanCharactersFromSet:ws intoString:NULL];
  if (![sc scanString:@"include" intoString:NULL]) return nil;
  [sc scanCharactersFromSet:ws intoString:NULL];
  if (![sc scanString:@"\"" intoString:NULL]) return nil;
  NSString *name = nil;
  if (![sc scanUpToString:@"\"" intoString:&name] || ![sc scanString:@"\"" intoString:NULL])
    return nil;
  return name.length > 0 ? name : nil;
}

static BOOL mb_is_pragma_once(NSString *line) {
  NSString *t = [line stringByTrimmingCharactersInSet:[NSCharacterSet whitespaceCharacterSet]];
  if (![t hasPrefix:@"#"]) return NO;
  NSArray<NSString *> *words = [[t substringFromIndex:1]
      componentsSeparatedByCharactersInSet:[NSCharacterSet whitespaceCharacterSet]];
  NSMutableArray<NSString *> *w = [NSMutableArray array];
  for (NSString *x in words)
    if (x.length) [w addObject:x];
  return w.count == 2 && [w[0] isEqualToString:@"pragma"] && [w[1] isEqualToString:@"once"];
}

/*
 * Metal's runtime compiler has no include path, so `#include "name"` lines
 * are expanded here: the named file is looked up next to the including file
 * (for nested includes) and in include_dir, and its text replaces the line,
 * framed by #line directives so diagnostics keep each file's own name and
 * line numbers. A file that says `#pragma once` is expanded once. A name
 * that is not found is left for the compiler to report. <...> includes are
 * untouched.
 */
static NSString *mb_expand_includes(NSString *text, NSString *displayName, NSString *fileDir,
                                    NSString *includeDir, int depth, NSMutableSet *onceFiles,
                                    BOOL *changed, NSString **problem) {
  if (depth > MB_MAX_INCLUDE_DEPTH) {
    *problem = [NSString
        stringWithFormat:@"#include nesting deeper than %d levels at %@ (an include cycle?)",
                         MB_MAX_INCLUDE_DEPTH, displayName];
    return nil;
  }
  NSArray<NSString *> *lines = [text componentsSeparatedByString:@"\n"];
  NSMutableString *outText = [NSMutableString stringWithCapacity:text.length + 64];
  NSFileManager *fm = [NSFileManager defaultManager];
  NSUInteger lineNo = 0;
  for (NSString *line in lines) {
    lineNo++;
    if (lineNo > 1) [outText appendString:@"\n"];
    if (depth > 0 && mb_is_pragma_once(line)) continue; /* keep the (now empty) line */
    NSString *name = mb_quoted_include(line);
    if (!name) {
      [outText appendString:line];
      continue;
    }
    NSMutableArray<NSString *> *candidates = [NSMutableArray array];
    if (name.isAbsolutePath) {
      [candidates addObject:name];
    } else {
      if (fileDir) [candidates addObject:[fileDir stringByAppendingPathComponent:name]];
      if (includeDir) [candidates addObject:[includeDir stringByAppendingPathComponent:name]];
    }
    NSString *found = nil;
    for (NSString *c in candidates) {
      BOOL isDir = NO;
      if ([fm fileExistsAtPath:c isDirectory:&isDir] && !isDir) {
        found = c.stringByStandardizingPath;
        break;
      }
    }
    if (!found) {
      [outText appendString:line];
      continue;
    }
    if ([onceFiles containsObject:found]) continue; /* already expanded, #pragma once */
    NSError *readError = nil;
    NSString *body = [NSString stringWithContentsOfFile:found
                                               encoding:NSUTF8StringEncoding
                                                  error:&readError];
    if (!body) {
      *problem = [NSString stringWithFormat:@"%@:%lu: cannot read included file %@: %@",
                                            displayName, (unsigned long)lineNo, found,
                                            readError.localizedDescription];
      return nil;
    }
    for (NSString *l in [body componentsSeparatedByString:@"\n"]) {
      if (mb_is_pragma_once(l)) {
        [onceFiles addObject:found];
        break;
      }
    }
    NSString *expanded =
        mb_expand_includes(body, name, found.stringByDeletingLastPathComponent, includeDir,
                           depth + 1, onceFiles, changed, problem);
    if (!expanded) return nil;
    *changed = YES;
    [outText appendFormat:@"#line 1 \"%@\"\n%@\n#line %lu \"%@\"", mb_line_name(name), expanded,
                          (unsigned long)(lineNo + 1), mb_line_name(displayName)];
  }
  return outText;
}

/* Compiler text with the source's name in place of "program_source" and
 * without the "Compilation failed:" preamble. */
static NSString *mb_compiler_text(NSError *error, NSString *sourceName) {
  NSString *text = error.localizedDescription ?: @"(the compiler gave no message)";
  if (sourceName.length > 0)
    text = [text stringByReplacingOccurrencesOfString:@"program_source:"
                                           withString:[sourceName stringByAppendingString:@":"]];
  NSString *trimmed =
      [text stringByTrimmingCharactersInSet:[NSCharacterSet whitespaceAndNewlineCharacterSet]];
  NSString *preamble = @"Compilation failed:";
  if ([trimmed hasPrefix:preamble])
    trimmed = [[trimmed substringFromIndex:preamble.length]
        stringByTrimmingCharactersInSet:[NSCharacterSet whitespaceAndNewlineCharacterSet]];
  return trimmed.length > 0 ? trimmed : text;
}

/* The first line of a compile failure: the kernel, the first error as the
 * compiler wrote it (file:line:col: error: ...), and how many more. The full
 * diagnostics follow on the next lines. */
static NSString *mb_compile_failure_text(NSString *fnName, NSString *what, NSString *body) {
  NSString *first = nil;
  NSUInteger errors = 0;
  for (NSString *line in [body componentsSeparatedByString:@"\n"]) {
    if ([line rangeOfString:@": error: "].location == NSNotFound &&
        [line rangeOfString:@": fatal error: "].location == NSNotFound)
      continue;
    errors++;
    if (!first)
      first = [line stringByTrimmingCharactersInSet:[NSCharacterSet whitespaceCharacterSet]];
  }
  NSString *head;
  if (first && errors > 1)
    head = [NSString stringWithFormat:@"kernel %@: %@ (and %lu more errors)", fnName, first,
                                      (unsigned long)(errors - 1)];
  else if (first)
    head = [NSString stringWithFormat:@"kernel %@: %@", fnName, first];
  else
    head = [NSString stringWithFormat:@"kernel %@: %@", fnName, what];
  return [NSString stringWithFormat:@"%@\n%@", head, body];
}

/* Reflection objects of macOS 13+ (MTLBinding), declared here because the
 * 12.0 SDK does not have them; every message is sent only after a
 * respondsToSelector: check. */
@protocol MetalBenchBridgeBindingLike <NSObject>
- (NSString *)name;
- (NSInteger)type;
- (NSUInteger)index;
- (BOOL)isUsed;
- (NSUInteger)bufferAlignment;
- (NSUInteger)bufferDataSize;
@end

static NSArray<MetalBenchBridgeArg *> *mb_args_from_bindings(NSArray *bindings) {
  NSMutableArray<MetalBenchBridgeArg *> *args = [NSMutableArray array];
  for (id obj in bindings) {
    id<MetalBenchBridgeBindingLike> b = obj;
    if (![b respondsToSelector:NSSelectorFromString(@"type")] ||
        ![b respondsToSelector:@selector(index)])
      return nil;
    MetalBenchBridgeArg *a = [MetalBenchBridgeArg new];
    a.kind = [b type];
    a.index = [b index];
    a.name = [b respondsToSelector:@selector(name)] ? [b name] : @"?";
    a.used = [b respondsToSelector:@selector(isUsed)] ? [b isUsed] : YES;
    BOOL hasAlignment = [b respondsToSelector:@selector(bufferAlignment)];
    a.bufferAlignment = (a.kind == MB_BINDING_BUFFER && hasAlignment) ? [b bufferAlignment] : 0;
    BOOL hasSize = [b respondsToSelector:@selector(bufferDataSize)];
    a.bufferDataSize = (a.kind == MB_BINDING_BUFFER && hasSize) ? [b bufferDataSize] : 0;
    [args addObject:a];
  }
  return args;
}

static NSArray<MetalBenchBridgeArg *> *mb_args_from_arguments(NSArray<MTLArgument *> *arguments) {
  NSMutableArray<MetalBenchBridgeArg *> *args = [NSMutableArray array];
  for (MTLArgument *m in arguments) {
    MetalBenchBridgeArg *a = [MetalBenchBridgeArg new];
    a.kind = (NSInteger)m.type;
    a.index = m.index;
    a.name = m.name ?: @"?";
    a.used = m.active;
    a.bufferAlignment = m.type == MTLArgumentTypeBuffer ? m.bufferAlignment : 0;
    a.bufferDataSize = m.type == MTLArgumentTypeBuffer ? m.bufferDataSize : 0;
    [args addObject:a];
  }
  return args;
}

/* The kernel's arguments: `bindings` where the OS has it (macOS 13+), else
 * the 12.0 SDK's `arguments`. nil if neither can be read. */
static NSArray<MetalBenchBridgeArg *> *mb_reflect(MTLComputePipelineReflection *reflection) {
  if (!reflection) return nil;
  @try {
    if ([reflection respondsToSelector:NSSelectorFromString(@"bindings")]) {
      NSObject *bindings = [reflection valueForKey:@"bindings"];
      if ([bindings isKindOfClass:[NSArray class]]) {
        NSArray<MetalBenchBridgeArg *> *args = mb_args_from_bindings((NSArray *)bindings);
        if (args) return args;
      }
    }
  } @catch (id e) {
    (void)e; /* fall back to arguments */
  }
  @try {
    if ([reflection respondsToSelector:@selector(arguments)])
      return mb_args_from_arguments(reflection.arguments);
  } @catch (id e) {
    (void)e;
  }
  return nil;
}

/* Function constant values from "name=value,index=value,...": each value is
 * parsed for the type the function declares for that constant. Returns nil
 * and sets *problem on a bad list. */
static NSString *mb_trim(NSString *s) {
  return [s stringByTrimmingCharactersInSet:NSCharacterSet.whitespaceCharacterSet];
}

static MTLFunctionConstant *mb_find_constant(id<MTLFunction> fn, NSString *key) {
  NSDictionary<NSString *, MTLFunctionConstant *> *declared = fn.functionConstantsDictionary;
  if (declared[key]) return declared[key];
  for (MTLFunctionConstant *c in declared.allValues)
    if ([[NSString stringWithFormat:@"%lu", (unsigned long)c.index] isEqualToString:key]) return c;
  return nil;
}

/* The scalar kinds of function constant the bridge sets. MTLDataType numbers
 * each scalar type and then its 2-, 3- and 4-vectors consecutively. */
typedef struct {
  NSUInteger type; /* MTLDataType of the scalar */
  const char *name;
  char kind;       /* b: bool, i: signed, u: unsigned, f: float, h: half, B: bfloat */
  unsigned bytes;  /* of one component */
} mb_constant_kind;

static const mb_constant_kind kConstantKinds[] = {
    {MTLDataTypeBool, "bool", 'b', 1},     {MTLDataTypeChar, "char", 'i', 1},
    {MTLDataTypeUChar, "uchar", 'u', 1},   {MTLDataTypeShort, "short", 'i', 2},
    {MTLDataTypeUShort, "ushort", 'u', 2}, {MTLDataTypeInt, "int", 'i', 4},
    {MTLDataTypeUInt, "uint", 'u', 4},     {MTLDataTypeLong, "long", 'i', 8},
    {MTLDataTypeULong, "ulong", 'u', 8},   {MTLDataTypeHalf, "half", 'h', 2},
    {MTLDataTypeFloat, "float", 'f', 4},   {MB_DATA_TYPE_BFLOAT, "bfloat", 'B', 2},
};

/* The kind and component count of a constant's type; NULL if unsupported. */
static const mb_constant_kind *mb_constant_kind_of(NSUInteger type, unsigned *components) {
  for (size_t i = 0; i < sizeof kConstantKinds / sizeof kConstantKinds[0]; i++) {
    NSUInteger base = kConstantKinds[i].type;
    if (type >= base && type <= base + 3) {
      *components = (unsigned)(type - base + 1);
      return &kConstantKinds[i];
    }
  }
  return NULL;
}

/* float -> bfloat, rounding to nearest even (the value is finite and in range). */
static uint16_t mb_bfloat_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

/* The low `bytes` bytes of v, an in-range integer already checked: on the
 * little-endian arm64 Macs this bridge builds for, that is v as an int or
 * uint of that width (two's complement for the signed ones). */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "mb_store_low_bytes assumes little-endian");
static void mb_store_low_bytes(uint64_t v, size_t bytes, void *out) { memcpy(out, &v, bytes); }

/* One component of a constant: its bytes at `out`, or a reason it is not a
 * value of its kind. Out-of-range values are refused, never truncated. */
static NSString *mb_constant_component(const mb_constant_kind *k, NSString *text, uint8_t *out) {
  const char *c = text.UTF8String;
  if (!c || !c[0]) return @"an empty value";
  char *end = NULL;
  errno = 0;
  switch (k->kind) {
    case 'b': {
      int b = mb_parse_bool(text);
      if (b < 0) return [NSString stringWithFormat:@"'%@' is not true or false", text];
      out[0] = (uint8_t)b;
      return nil;
    }
    case 'i': {
      long long v = strtoll(c, &end, 10);
      if (*end != '\0') return [NSString stringWithFormat:@"'%@' is not an integer", text];
      long long lo = k->bytes == 8 ? LLONG_MIN : -(1ll << (8 * k->bytes - 1));
      long long hi = k->bytes == 8 ? LLONG_MAX : (1ll << (8 * k->bytes - 1)) - 1;
      if (errno == ERANGE || v < lo || v > hi)
        return [NSString stringWithFormat:@"%@ is out of range for %s (%lld..%lld)", text,
                                          k->name, lo, hi];
      mb_store_low_bytes((uint64_t)v, k->bytes, out);
      return nil;
    }
    case 'u': {
      unsigned long long hi = k->bytes == 8 ? ULLONG_MAX : (1ull << (8 * k->bytes)) - 1;
      /* strtoull takes "-1" as ULLONG_MAX: a sign is refused first. */
      BOOL negative = c[0] == '-';
      unsigned long long v = (c[0] == '+' || negative) ? 0 : strtoull(c, &end, 10);
      if (!negative && (c[0] == '+' || *end != '\0'))
        return [NSString stringWithFormat:@"'%@' is not an integer", text];
      if (negative || errno == ERANGE || v > hi)
        return [NSString stringWithFormat:@"%@ is out of range for %s (0..%llu)", text, k->name,
                                          hi];
      mb_store_low_bytes((uint64_t)v, k->bytes, out);
      return nil;
    }
    default: { /* f, h, B */
      double v = strtod(c, &end);
      if (*end != '\0' || end == c || !isfinite(v))
        return [NSString stringWithFormat:@"'%@' is not a finite number", text];
      double max = k->kind == 'f' ? (double)FLT_MAX : k->kind == 'h' ? 65504.0
                                                                     : 3.3895313892515355e38;
      if (fabs(v) > max)
        return [NSString stringWithFormat:@"%@ is out of range for %s (largest %g)", text,
                                          k->name, max];
      if (k->kind == 'f') {
        float f = (float)v;
        memcpy(out, &f, 4);
      } else if (k->kind == 'h') {
        _Float16 h = (_Float16)v;
        memcpy(out, &h, 2);
      } else {
        uint16_t bits = mb_bfloat_bits((float)v);
        memcpy(out, &bits, 2);
      }
      return nil;
    }
  }
}

/* Set one constant from its text: a scalar, or a vector's components
 * separated by spaces ("1 0.5 2"). Returns nil, or why the text is not a
 * value of the constant's type. */
static NSString *mb_set_constant(MTLFunctionConstantValues *values, MTLFunctionConstant *c,
                                 NSString *text) {
  unsigned n = 0;
  const mb_constant_kind *k = mb_constant_kind_of((NSUInteger)c.type, &n);
  if (!k)
    return [NSString stringWithFormat:@"its type (MTLDataType %lu) is not one the bridge sets "
                                      @"(bool, char..ulong, half, float, bfloat and their "
                                      @"vectors)",
                                      (unsigned long)c.type];
  NSString *type = n == 1 ? @(k->name) : [NSString stringWithFormat:@"%s%u", k->name, n];
  NSMutableArray<NSString *> *parts = [NSMutableArray array];
  NSCharacterSet *space = NSCharacterSet.whitespaceCharacterSet;
  for (NSString *p in [text componentsSeparatedByCharactersInSet:space])
    if (p.length) [parts addObject:p];
  if (parts.count != n)
    return n == 1 ? [NSString stringWithFormat:@"'%@' is not one %@ value", text, type]
                  : [NSString stringWithFormat:@"'%@' has %lu component(s); a %@ takes %u "
                                               @"separated by spaces",
                                               text, (unsigned long)parts.count, type, n];
  uint8_t bytes[32] = {0}; /* 3-vectors are laid out as 4 */
  for (unsigned i = 0; i < n; i++) {
    NSString *why = mb_constant_component(k, parts[i], bytes + i * k->bytes);
    if (why) return [NSString stringWithFormat:@"%@ (it is a %@)", why, type];
  }
  [values setConstantValue:bytes type:c.type atIndex:c.index];
  return nil;
}

static MTLFunctionConstantValues *mb_constant_values(id<MTLFunction> fn, NSString *list,
                                                     NSString **problem) {
  MTLFunctionConstantValues *values = [MTLFunctionConstantValues new];
  for (NSString *raw in [list componentsSeparatedByString:@","]) {
    NSString *item = mb_trim(raw);
    if (item.length == 0) continue;
    NSRange eq = [item rangeOfString:@"="];
    if (eq.location == NSNotFound) {
      *problem = [NSString stringWithFormat:@"function constant '%@' has no '=value'", item];
      return nil;
    }
    NSString *key = mb_trim([item substringToIndex:eq.location]);
    NSString *text = mb_trim([item substringFromIndex:eq.location + 1]);
    MTLFunctionConstant *c = mb_find_constant(fn, key);
    if (!c) {
      NSArray *names = fn.functionConstantsDictionary.allKeys;
      NSString *known = names.count ? [names componentsJoinedByString:@", "] : @"none";
      *problem = [NSString stringWithFormat:@"the kernel declares no function constant '%@' "
                                            @"(it has: %@)",
                                            key, known];
      return nil;
    }
    NSString *why = mb_set_constant(values, c, text);
    if (why) {
      *problem = [NSString stringWithFormat:@"function constant '%@': %@", c.name, why];
      return nil;
    }
  }
  return values;
}

int32_t mb_pipeline_compile(mb_device *dev, const char *source, const char *function,
                            const char *options, mb_pipeline **out, char *err, uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(d, MetalBenchBridgeDevice, dev, "device")
  if (!out) return mb_fail(err, err_cap, MB_E_ARGUMENT, @"mb_pipeline_compile: out is null");
  *out = NULL;
  NSString *fnName = mb_string(function);
  if (fnName.length == 0)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"mb_pipeline_compile: the function name is null, empty or not UTF-8");
  NSDictionary<NSString *, NSString *> *opts = nil;
  int32_t st = mb_parse_options(options, &opts, err, err_cap);
  if (st != MB_OK) return st;
  NSString *sourceName = opts[@"source_name"].length > 0 ? opts[@"source_name"] : nil;
  NSString *shownName = sourceName ?: @"program_source";
  NSString *metallib = opts[@"metallib"].length > 0 ? opts[@"metallib"] : nil;
  id<MTLDevice> device = d.device;
  id<MTLLibrary> library = nil;
  NSError *error = nil;

  if (metallib) {
    /* An offline library: the caller chose the per-chip file. Its math mode
     * is the one it was built with (`xcrun metal` defaults to fast math; build
     * with -fno-fast-math): fast_math cannot change it here. */
    BOOL isDir = NO;
    if (![[NSFileManager defaultManager] fileExistsAtPath:metallib isDirectory:&isDir] || isDir)
      return mb_fail(err, err_cap, MB_E_ARGUMENT, @"kernel %@: metallib %@ does not exist",
                     fnName, metallib);
    library = [device newLibraryWithURL:[NSURL fileURLWithPath:metallib] error:&error];
    if (!library)
      return mb_fail(err, err_cap, MB_E_COMPILE, @"kernel %@: cannot load metallib %@: %@", fnName,
                     metallib, error.localizedDescription ?: @"(no message)");
    shownName = metallib.lastPathComponent;
  } else {
    NSString *src = mb_string(source);
    if (!src)
      return mb_fail(err, err_cap, MB_E_ARGUMENT,
                     @"kernel %@: the source is null or not valid UTF-8", fnName);
    NSString *includeDir = opts[@"include_dir"].length > 0 ? opts[@"include_dir"] : nil;
    if (includeDir && [src rangeOfString:@"#"].location != NSNotFound) {
      BOOL changed = NO;
      NSString *problem = nil;
      NSString *expanded = mb_expand_includes(src, shownName, nil, includeDir, 0,
                                              [NSMutableSet set], &changed, &problem);
      if (!expanded)
        return mb_fail(err, err_cap, MB_E_COMPILE, @"kernel %@: %@", fnName, problem);
      if (changed)
        src = [NSString stringWithFormat:@"#line 1 \"%@\"\n%@", mb_line_name(shownName), expanded];
    }

    /* Fast math is OFF unless asked for: Metal's own default is on
     * ("fastMathEnabled defaults to YES"), while MLX compiles its kernels
     * with it off and the simulator computes IEEE results (Inf/NaN kept,
     * precise exp/log/division). So it is set explicitly either way. */
    MTLCompileOptions *co = [MTLCompileOptions new];
    NSString *fast = opts[@"fast_math"].length > 0 ? opts[@"fast_math"] : @"0";
    int on = mb_parse_bool(fast);
    if (on < 0) return mb_fail(err, err_cap, MB_E_ARGUMENT, @"fast_math=%@: use 0 or 1", fast);
    if ([co respondsToSelector:NSSelectorFromString(@"setMathMode:")]) {
      /* macOS 15+: mathMode replaces fastMathEnabled. */
      [co setValue:@(on ? MB_MATH_MODE_FAST : MB_MATH_MODE_SAFE) forKey:@"mathMode"];
      if ([co respondsToSelector:NSSelectorFromString(@"setMathFloatingPointFunctions:")])
        [co setValue:@(on ? MB_MATH_FP_FUNCTIONS_FAST : MB_MATH_FP_FUNCTIONS_PRECISE)
              forKey:@"mathFloatingPointFunctions"];
    } else {
      co.fastMathEnabled = on ? YES : NO;
    }
    NSString *lang = opts[@"language_version"];
    if (lang.length > 0) {
      NSInteger minOS = 0;
      NSUInteger v = mb_language_version(lang, &minOS);
      if (v == 0)
        return mb_fail(err, err_cap, MB_E_ARGUMENT,
                       @"language_version=%@ is not a Metal language version (1.1 .. 4.0, e.g. "
                       @"3.1 for bfloat)",
                       lang);
      if (!mb_os_at_least(minOS, 0))
        return mb_fail(err, err_cap, MB_E_COMPILE,
                       @"kernel %@: Metal %@ needs macOS %ld or later; this is %@", fnName, lang,
                       (long)minOS, [NSProcessInfo processInfo].operatingSystemVersionString);
      co.languageVersion = (MTLLanguageVersion)v; /* passed by value: 3.1 = (3 << 16) + 1 */
    }

    library = [device newLibraryWithSource:src options:co error:&error];
    if (!library) {
      /* A one-line summary, then the diagnostics one per line as the
       * compiler wrote them. */
      NSString *what = [NSString
          stringWithFormat:@"%@ did not compile", sourceName ?: @"the source"];
      return mb_fail_text(
          err, err_cap, MB_E_COMPILE,
          mb_compile_failure_text(fnName, what, mb_compiler_text(error, sourceName)), NO);
    }
    /* A library with an error set compiled with warnings only: success. */
  }

  id<MTLFunction> fn = [library newFunctionWithName:fnName];
  if (!fn) {
    NSArray<NSString *> *names =
        [library.functionNames sortedArrayUsingSelector:@selector(compare:)];
    return mb_fail(err, err_cap, MB_E_COMPILE, @"kernel %@ not found in %@; it has: %@", fnName,
                   shownName,
                   names.count ? [names componentsJoinedByString:@", "] : @"(no functions)");
  }
  NSString *constants = opts[@"function_constants"];
  if (constants.length > 0) {
    NSString *problem = nil;
    MTLFunctionConstantValues *values = mb_constant_values(fn, constants, &problem);
    if (!values)
      return mb_fail(err, err_cap, MB_E_COMPILE, @"kernel %@: %@", fnName, problem);
    fn = [library newFunctionWithName:fnName constantValues:values error:&error];
    if (!fn)
      return mb_fail(err, err_cap, MB_E_COMPILE, @"kernel %@: function constants: %@", fnName,
                     error.localizedDescription ?: @"(no message)");
  }
  if (fn.functionType != MTLFunctionTypeKernel)
    return mb_fail(err, err_cap, MB_E_COMPILE,
                   @"%@ in %@ is not a kernel function (declare it `kernel void %@(...)`)", fnName,
                   shownName, fnName);

  MTLAutoreleasedComputePipelineReflection reflection = nil;
  /* ArgumentInfo (1 << 0) is the same bit as macOS 13's BindingInfo. */
  id<MTLComputePipelineState> pso =
      [device newComputePipelineStateWithFunction:fn
                                          options:MTLPipelineOptionArgumentInfo
                                       reflection:&reflection
                                            error:&error];
  if (!pso)
    return mb_fail_text(
        err, err_cap, MB_E_COMPILE,
        mb_compile_failure_text(
            fnName, [NSString stringWithFormat:@"%@: cannot make a compute pipeline", shownName],
            mb_compiler_text(error, sourceName)),
        NO);

  MetalBenchBridgePipeline *p = [MetalBenchBridgePipeline new];
  p.owner = d;
  p.state = pso;
  p.functionName = fnName;
  p.sourceName = shownName;
  p.args = mb_reflect(reflection);
  *out = (__bridge_retained mb_pipeline *)p;
  return MB_OK;
  MB_END
}

int32_t mb_pipeline_facts_get(mb_pipeline *pipeline, mb_pipeline_facts *out, char *err,
                              uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(p, MetalBenchBridgePipeline, pipeline, "pipeline")
  if (!out) return mb_fail(err, err_cap, MB_E_ARGUMENT, @"mb_pipeline_facts_get: out is null");
  memset(out, 0, sizeof *out);
  out->max_total_threads_per_threadgroup = mb_clamp_u32(p.state.maxTotalThreadsPerThreadgroup);
  out->thread_execution_width = mb_clamp_u32(p.state.threadExecutionWidth);
  out->static_threadgroup_memory_length = mb_clamp_u32(p.state.staticThreadgroupMemoryLength);
  out->reserved = 0;
  return MB_OK;
  MB_END
}

void mb_pipeline_free(mb_pipeline *pipeline) {
  if (!pipeline) return;
  MB_VOID_BEGIN
  (void)CFBridgingRelease(pipeline); /* recorded steps keep what they use */
  MB_VOID_END
}

/* ---- buffers ------------------------------------------------------------------- */

int32_t mb_buffer_new(mb_device *dev, uint64_t length, mb_buffer **out, char *err,
                      uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(d, MetalBenchBridgeDevice, dev, "device")
  if (!out) return mb_fail(err, err_cap, MB_E_ARGUMENT, @"mb_buffer_new: out is null");
  *out = NULL;
  id<MTLDevice> device = d.device;
  NSUInteger maxLength = device.maxBufferLength;
  if (length > (uint64_t)maxLength)
    return mb_fail(err, err_cap, MB_E_RESOURCE,
                   @"a %llu-byte buffer exceeds this device's maxBufferLength (%lu bytes)",
                   (unsigned long long)length, (unsigned long)maxLength);
  /* Metal does not make empty buffers: a 0-byte request gets a small one
   * that reads and writes still see as 0 bytes long. */
  NSUInteger allocLength = length == 0 ? MB_THREADGROUP_GRANULE : (NSUInteger)length;
  id<MTLBuffer> buffer = [device newBufferWithLength:allocLength
                                             options:MTLResourceStorageModeShared];
  if (!buffer || !buffer.contents)
    return mb_fail(err, err_cap, MB_E_RESOURCE,
                   @"cannot allocate a %llu-byte shared Metal buffer (recommended working set "
                   @"%llu bytes, %lu bytes allocated now)",
                   (unsigned long long)length,
                   (unsigned long long)device.recommendedMaxWorkingSetSize,
                   (unsigned long)device.currentAllocatedSize);
  MetalBenchBridgeBuffer *b = [MetalBenchBridgeBuffer new];
  b.owner = d;
  b.buffer = buffer;
  b.length = length;
  *out = (__bridge_retained mb_buffer *)b;
  return MB_OK;
  MB_END
}

/* offset + length within a buffer of `size` bytes, without overflow. */
static BOOL mb_in_bounds(uint64_t offset, uint64_t length, uint64_t size) {
  return offset <= size && length <= size - offset;
}

int32_t mb_buffer_write(mb_buffer *buffer, uint64_t offset, const void *src, uint64_t length,
                        char *err, uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(b, MetalBenchBridgeBuffer, buffer, "buffer")
  if (!mb_in_bounds(offset, length, b.length))
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"buffer write of %llu bytes at offset %llu overruns the %llu-byte buffer",
                   (unsigned long long)length, (unsigned long long)offset,
                   (unsigned long long)b.length);
  if (length == 0) return MB_OK;
  if (!src) return mb_fail(err, err_cap, MB_E_ARGUMENT, @"buffer write: the source is null");
  memcpy((uint8_t *)b.buffer.contents + offset, src, (size_t)length);
  return MB_OK;
  MB_END
}

int32_t mb_buffer_read(mb_buffer *buffer, uint64_t offset, void *dst, uint64_t length, char *err,
                       uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(b, MetalBenchBridgeBuffer, buffer, "buffer")
  if (!mb_in_bounds(offset, length, b.length))
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"buffer read of %llu bytes at offset %llu overruns the %llu-byte buffer",
                   (unsigned long long)length, (unsigned long long)offset,
                   (unsigned long long)b.length);
  if (length == 0) return MB_OK;
  if (!dst) return mb_fail(err, err_cap, MB_E_ARGUMENT, @"buffer read: the destination is null");
  memcpy(dst, (const uint8_t *)b.buffer.contents + offset, (size_t)length);
  return MB_OK;
  MB_END
}

void mb_buffer_free(mb_buffer *buffer) {
  if (!buffer) return;
  MB_VOID_BEGIN
  (void)CFBridgingRelease(buffer); /* a recorded step that binds it keeps it alive */
  MB_VOID_END
}

/* ---- commands: recording ------------------------------------------------------ */

int32_t mb_command_new(mb_device *dev, mb_command **out, char *err, uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(d, MetalBenchBridgeDevice, dev, "device")
  if (!out) return mb_fail(err, err_cap, MB_E_ARGUMENT, @"mb_command_new: out is null");
  *out = NULL;
  MetalBenchBridgeCommand *c = [MetalBenchBridgeCommand new];
  c.owner = d;
  c.slots = [NSMutableDictionary dictionary];
  c.threadgroupLengths = [NSMutableDictionary dictionary];
  c.steps = [NSMutableArray array];
  c.launchEnds = [NSMutableArray array];
  c.sampleBuffers = [NSMutableArray array];
  c.passDescriptors = [NSMutableArray array];
  *out = (__bridge_retained mb_command *)c;
  return MB_OK;
  MB_END
}

int32_t mb_command_set_pipeline(mb_command *cmd, mb_pipeline *pipeline, char *err,
                                uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(c, MetalBenchBridgeCommand, cmd, "command")
  MB_HANDLE(p, MetalBenchBridgePipeline, pipeline, "pipeline")
  if (p.owner != c.owner)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"kernel %@: the pipeline was compiled for another device handle",
                   p.functionName);
  c.pipeline = p;
  return MB_OK;
  MB_END
}

int32_t mb_command_set_buffer(mb_command *cmd, uint32_t index, mb_buffer *buffer, uint64_t offset,
                              char *err, uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(c, MetalBenchBridgeCommand, cmd, "command")
  MB_HANDLE(b, MetalBenchBridgeBuffer, buffer, "buffer")
  if (index >= MB_MAX_BUFFER_INDEX)
    return mb_fail(err, err_cap, MB_E_ARGUMENT, @"buffer(%u): Metal buffer indices are 0..%u",
                   index, MB_MAX_BUFFER_INDEX - 1);
  if (b.owner != c.owner)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"buffer(%u): the buffer belongs to another device handle", index);
  /* Up to the end: a zero-length buffer (or an empty tail) binds like any
   * other, as on the simulator. Metal needs the offset inside the MTLBuffer,
   * which is at least 16 bytes long. */
  if (offset > b.length)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"buffer(%u): offset %llu is past the end of the %llu-byte buffer", index,
                   (unsigned long long)offset, (unsigned long long)b.length);
  if (offset >= (uint64_t)b.buffer.length)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"buffer(%u): offset %llu is the end of the %llu-byte buffer; Metal binds "
                   @"no empty range there (bind offset 0 of a zero-length buffer instead)",
                   index, (unsigned long long)offset, (unsigned long long)b.length);
  MetalBenchBridgeSlot *slot = [MetalBenchBridgeSlot new];
  slot.buffer = b;
  slot.offset = offset;
  c.slots[@(index)] = slot;
  return MB_OK;
  MB_END
}

int32_t mb_command_set_bytes(mb_command *cmd, uint32_t index, const void *bytes, uint64_t length,
                             char *err, uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(c, MetalBenchBridgeCommand, cmd, "command")
  if (index >= MB_MAX_BUFFER_INDEX)
    return mb_fail(err, err_cap, MB_E_ARGUMENT, @"buffer(%u): Metal buffer indices are 0..%u",
                   index, MB_MAX_BUFFER_INDEX - 1);
  if (length == 0 || length > MB_MAX_INLINE_BYTES)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"buffer(%u): inline bytes must be 1..%u bytes long, not %llu (use a buffer "
                   @"for more)",
                   index, MB_MAX_INLINE_BYTES, (unsigned long long)length);
  if (!bytes) return mb_fail(err, err_cap, MB_E_ARGUMENT, @"buffer(%u): the bytes are null", index);
  MetalBenchBridgeSlot *slot = [MetalBenchBridgeSlot new];
  slot.bytes = [NSData dataWithBytes:bytes length:(NSUInteger)length];
  c.slots[@(index)] = slot;
  return MB_OK;
  MB_END
}

/* Lengths are ROUNDED UP to a multiple of 16 bytes (what
 * setThreadgroupMemoryLength: requires); 0 removes the allocation. */
int32_t mb_command_set_threadgroup_memory(mb_command *cmd, uint32_t index, uint64_t length,
                                          char *err, uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(c, MetalBenchBridgeCommand, cmd, "command")
  if (index >= MB_MAX_THREADGROUP_INDEX)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"threadgroup(%u): threadgroup memory indices are 0..%u", index,
                   MB_MAX_THREADGROUP_INDEX - 1);
  if (length == 0) {
    [c.threadgroupLengths removeObjectForKey:@(index)];
    return MB_OK;
  }
  uint64_t maxLength = c.owner.device.maxThreadgroupMemoryLength;
  if (length > maxLength)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"threadgroup(%u): %llu bytes exceed the device's %llu bytes of threadgroup "
                   @"memory",
                   index, (unsigned long long)length, (unsigned long long)maxLength);
  uint64_t granule = MB_THREADGROUP_GRANULE;
  uint64_t rounded = (length + granule - 1) / granule * granule; /* length <= 32 KB here */
  c.threadgroupLengths[@(index)] = @(rounded);
  return MB_OK;
  MB_END
}

static NSString *mb_size_text(MTLSize s) {
  return [NSString stringWithFormat:@"%lux%lux%lu", (unsigned long)s.width,
                                    (unsigned long)s.height, (unsigned long)s.depth];
}

static NSString *mb_kind_name(NSInteger kind) {
  switch (kind) {
    case MB_BINDING_BUFFER: return @"buffer";
    case MB_BINDING_THREADGROUP: return @"threadgroup";
    case MB_BINDING_TEXTURE: return @"texture";
    case MB_BINDING_SAMPLER: return @"sampler";
    default: return [NSString stringWithFormat:@"binding kind %ld", (long)kind];
  }
}

int32_t mb_command_dispatch(mb_command *cmd, uint32_t mode, uint32_t grid_x, uint32_t grid_y,
                            uint32_t grid_z, uint32_t group_x, uint32_t group_y, uint32_t group_z,
                            char *err, uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(c, MetalBenchBridgeCommand, cmd, "command")
  MetalBenchBridgePipeline *p = c.pipeline;
  if (!p)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"dispatch: no pipeline set (call mb_command_set_pipeline first)");
  NSString *kernel = p.functionName;
  id<MTLDevice> device = c.owner.device;
  MTLSize grid = MTLSizeMake(grid_x, grid_y, grid_z);
  MTLSize group = MTLSizeMake(group_x, group_y, group_z);

  if (mode != MB_DISPATCH_THREADS && mode != MB_DISPATCH_THREADGROUPS)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"kernel %@: dispatch mode %u is neither threads (0) nor threadgroups (1)",
                   kernel, mode);
  if (mode == MB_DISPATCH_THREADS && !c.owner.nonUniformThreadgroups)
    return mb_fail(err, err_cap, MB_E_UNSUPPORTED,
                   @"kernel %@: this GPU has no non-uniform threadgroups (dispatchThreads needs "
                   @"Apple4+); dispatch by threadgroups",
                   kernel);
  if (grid_x == 0 || grid_y == 0 || grid_z == 0)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"kernel %@: grid %@ has an empty dimension (each must be at least 1)", kernel,
                   mb_size_text(grid));
  if (group_x == 0 || group_y == 0 || group_z == 0)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"kernel %@: threadgroup %@ has an empty dimension (each must be at least 1)",
                   kernel, mb_size_text(group));

  uint64_t groupThreads = (uint64_t)group_x * group_y * group_z;
  NSUInteger maxTotal = p.state.maxTotalThreadsPerThreadgroup;
  if (groupThreads > (uint64_t)maxTotal)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"kernel %@: threadgroup %@ has %llu threads, more than the pipeline's "
                   @"maxTotalThreadsPerThreadgroup %lu",
                   kernel, mb_size_text(group), (unsigned long long)groupThreads,
                   (unsigned long)maxTotal);
  MTLSize maxDims = device.maxThreadsPerThreadgroup;
  if (group_x > maxDims.width || group_y > maxDims.height || group_z > maxDims.depth)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"kernel %@: threadgroup %@ exceeds the device's per-dimension limit %@", kernel,
                   mb_size_text(group), mb_size_text(maxDims));
  if (mode == MB_DISPATCH_THREADGROUPS &&
      ((uint64_t)grid_x * group_x > UINT32_MAX || (uint64_t)grid_y * group_y > UINT32_MAX ||
       (uint64_t)grid_z * group_z > UINT32_MAX))
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"kernel %@: %@ threadgroups of %@ threads overflow a 32-bit thread position",
                   kernel, mb_size_text(grid), mb_size_text(group));

  /* The threadgroup memory this kernel takes: lengths set at the indices it
   * declares (all of them if reflection is missing). Lengths an earlier
   * step set for its own kernel neither count nor get bound here. */
  NSMutableDictionary<NSNumber *, NSNumber *> *tgLengths = [NSMutableDictionary dictionary];
  if (p.args) {
    for (MetalBenchBridgeArg *a in p.args)
      if (a.kind == MB_BINDING_THREADGROUP && c.threadgroupLengths[@(a.index)])
        tgLengths[@(a.index)] = c.threadgroupLengths[@(a.index)];
  } else {
    [tgLengths addEntriesFromDictionary:c.threadgroupLengths];
  }
  uint64_t tgTotal = p.state.staticThreadgroupMemoryLength;
  for (NSNumber *len in tgLengths.allValues) tgTotal += len.unsignedLongLongValue;
  if (tgTotal > device.maxThreadgroupMemoryLength)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"kernel %@: %llu bytes of threadgroup memory (%lu static + %llu set) exceed "
                   @"the device's %lu",
                   kernel, (unsigned long long)tgTotal,
                   (unsigned long)p.state.staticThreadgroupMemoryLength,
                   (unsigned long long)(tgTotal - p.state.staticThreadgroupMemoryLength),
                   (unsigned long)device.maxThreadgroupMemoryLength);

  /* Every binding the kernel uses must be set. */
  for (MetalBenchBridgeArg *a in p.args) {
    if (!a.used) continue;
    switch (a.kind) {
      case MB_BINDING_BUFFER: {
        MetalBenchBridgeSlot *slot = c.slots[@(a.index)];
        if (!slot)
          return mb_fail(err, err_cap, MB_E_ARGUMENT,
                         @"kernel %@: argument '%@' at buffer(%lu) is not bound (set a buffer "
                         @"or bytes at index %lu)",
                         kernel, a.name, (unsigned long)a.index, (unsigned long)a.index);
        /* Reflection gives the size of what the argument points at: inline
         * bytes shorter than that (2 bytes for a `constant uint&`) would be
         * read past their end. A buffer is checked against the MTLBuffer's
         * real length (what Metal's validation checks); zero-length and short
         * buffers stay legal for pointers, as on the simulator. */
        if (slot.bytes && a.bufferDataSize > slot.bytes.length)
          return mb_fail(err, err_cap, MB_E_ARGUMENT,
                         @"kernel %@: argument '%@' at buffer(%lu) reads %lu bytes, but only %lu "
                         @"bytes were set",
                         kernel, a.name, (unsigned long)a.index, (unsigned long)a.bufferDataSize,
                         (unsigned long)slot.bytes.length);
        if (slot.buffer && a.bufferDataSize > slot.buffer.buffer.length - slot.offset)
          return mb_fail(err, err_cap, MB_E_ARGUMENT,
                         @"kernel %@: argument '%@' at buffer(%lu) reads %lu bytes, but the buffer "
                         @"bound there has %llu bytes past offset %llu",
                         kernel, a.name, (unsigned long)a.index, (unsigned long)a.bufferDataSize,
                         (unsigned long long)(slot.buffer.length - slot.offset),
                         (unsigned long long)slot.offset);
        if (slot.buffer && a.bufferAlignment > 1 && slot.offset % a.bufferAlignment != 0)
          return mb_fail(err, err_cap, MB_E_ARGUMENT,
                         @"kernel %@: argument '%@' at buffer(%lu): offset %llu is not a multiple "
                         @"of its alignment %lu",
                         kernel, a.name, (unsigned long)a.index, (unsigned long long)slot.offset,
                         (unsigned long)a.bufferAlignment);
        break;
      }
      case MB_BINDING_THREADGROUP:
        if (!c.threadgroupLengths[@(a.index)])
          return mb_fail(err, err_cap, MB_E_ARGUMENT,
                         @"kernel %@: argument '%@' at threadgroup(%lu) has no threadgroup memory "
                         @"length set",
                         kernel, a.name, (unsigned long)a.index);
        break;
      default:
        return mb_fail(err, err_cap, MB_E_UNSUPPORTED,
                       @"kernel %@: argument '%@' is a %@ at index %lu; the bridge binds only "
                       @"buffers, inline bytes and threadgroup memory",
                       kernel, a.name, mb_kind_name(a.kind), (unsigned long)a.index);
    }
  }

  MetalBenchBridgeStep *step = [MetalBenchBridgeStep new];
  step.pipeline = p;
  step.slots = c.slots;                           /* copy property: a snapshot */
  step.threadgroupLengths = tgLengths; /* copy property: a snapshot */
  step.mode = mode;
  step.grid = grid;
  step.group = group;
  NSUInteger launchStart = c.launchEnds.count ? c.launchEnds.lastObject.unsignedIntegerValue : 0;
  step.label = [NSString stringWithFormat:@"launch %lu step %lu: %@",
                                          (unsigned long)c.launchEnds.count,
                                          (unsigned long)(c.steps.count - launchStart + 1), kernel];
  [c.steps addObject:step];
  return MB_OK;
  MB_END
}

int32_t mb_command_end_launch(mb_command *cmd, char *err, uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(c, MetalBenchBridgeCommand, cmd, "command")
  NSUInteger from = c.launchEnds.count ? c.launchEnds.lastObject.unsignedIntegerValue : 0;
  if (c.steps.count <= from)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"end of a launch with no dispatch in it (call mb_command_dispatch first)");
  [c.launchEnds addObject:@(c.steps.count)];
  return MB_OK;
  MB_END
}

/* ---- commands: running ---------------------------------------------------------- */

static NSString *mb_command_buffer_error_name(NSInteger code) {
  switch (code) {
    case MTLCommandBufferErrorNone: return @"MTLCommandBufferErrorNone";
    case MTLCommandBufferErrorInternal: return @"MTLCommandBufferErrorInternal";
    case MTLCommandBufferErrorTimeout: return @"MTLCommandBufferErrorTimeout";
    case MTLCommandBufferErrorPageFault: return @"MTLCommandBufferErrorPageFault";
    case MTLCommandBufferErrorAccessRevoked: return @"MTLCommandBufferErrorAccessRevoked";
    case MTLCommandBufferErrorNotPermitted: return @"MTLCommandBufferErrorNotPermitted";
    case MTLCommandBufferErrorOutOfMemory: return @"MTLCommandBufferErrorOutOfMemory";
    case MTLCommandBufferErrorInvalidResource: return @"MTLCommandBufferErrorInvalidResource";
    case MTLCommandBufferErrorMemoryless: return @"MTLCommandBufferErrorMemoryless";
    case MTLCommandBufferErrorDeviceRemoved: return @"MTLCommandBufferErrorDeviceRemoved";
    case MTLCommandBufferErrorStackOverflow: return @"MTLCommandBufferErrorStackOverflow";
    default: return [NSString stringWithFormat:@"MTLCommandBufferError code %ld", (long)code];
  }
}

/* "MTLCommandBufferErrorPageFault: <Metal's description>" */
static NSString *mb_error_text(NSError *e) {
  BOOL metal = [e.domain isEqualToString:MTLCommandBufferErrorDomain];
  NSString *code = metal ? mb_command_buffer_error_name(e.code)
                         : [NSString stringWithFormat:@"%@ code %ld", e.domain ?: @"(no domain)",
                                                      (long)e.code];
  return [NSString
      stringWithFormat:@"%@: %@", code, e.localizedDescription ?: @"(Metal gave no description)"];
}

typedef NS_ENUM(NSInteger, MBFailure) { MBFailureFault, MBFailureTimeout, MBFailureLost };

/* What a command buffer's error means for the harness. */
static MBFailure mb_failure_kind(NSError *e) {
  BOOL metal = [e.domain isEqualToString:MTLCommandBufferErrorDomain];
  NSString *text = e.localizedDescription ?: @"";
  /* After GPU faults or time-outs macOS stops running the process's work:
   * access revoked, or IOGPU's "Ignored (for causing prior/excessive GPU
   * errors) (...kIOGPUCommandBufferCallbackErrorSubmissionsIgnored)". */
  if ((metal && (e.code == MTLCommandBufferErrorAccessRevoked ||
                 e.code == MTLCommandBufferErrorDeviceRemoved)) ||
      [text rangeOfString:@"SubmissionsIgnored"].location != NSNotFound)
    return MBFailureLost;
  /* The GPU watchdog reports through IOGPU text such as "Caused GPU Timeout
   * Error (...kIOGPUCommandBufferCallbackErrorTimeout)" or "Impacting
   * Interactivity (...ErrorImpactingInteractivity)": both are time-outs. */
  if ((metal && e.code == MTLCommandBufferErrorTimeout) ||
      [text rangeOfString:@"Timeout"].location != NSNotFound ||
      [text rangeOfString:@"ImpactingInteractivity"].location != NSNotFound)
    return MBFailureTimeout;
  return MBFailureFault;
}

/* A fresh command queue after a failure, so that later work does not queue
 * behind a broken command buffer. */
static void mb_renew_queue(MetalBenchBridgeDevice *d) {
  id<MTLCommandQueue> q = [d.device newCommandQueue];
  if (q) d.queue = q;
}

/* Remember a GPU failure, to be named if the device is lost later. */
static void mb_note_failure(MetalBenchBridgeDevice *d, NSString *what) {
  @synchronized(d) {
    [d.failures addObject:what];
    while (d.failures.count > MB_FAILURES_KEPT) [d.failures removeObjectAtIndex:0];
  }
}

/* The device is gone for this process: every later run returns this. */
static int32_t mb_device_lost(MetalBenchBridgeDevice *d, NSString *what, char *err,
                              uint64_t err_cap) {
  NSString *earlier = @"";
  @synchronized(d) {
    if (d.failures.count)
      earlier = [NSString stringWithFormat:@" (after GPU failures of %@)",
                                           [d.failures componentsJoinedByString:@", "]];
  }
  d.lostMessage = [NSString
      stringWithFormat:@"the GPU is lost for this process: %@%@; nothing more runs on it in this "
                       @"process",
                       what, earlier];
  return mb_fail(err, err_cap, MB_E_DEVICE_LOST, @"%@", d.lostMessage);
}

/*
 * Before anything runs on the device: it must not be lost, and a command
 * buffer that outlived timeout_ms must have ended, so that no kernel is
 * timed (or blamed) while the GPU still runs another. It is waited for up
 * to MB_PENDING_WAIT_MS after it timed out; one that never ends, or ends
 * with access revoked, makes the device lost.
 */
static int32_t mb_settle(MetalBenchBridgeDevice *d, char *err, uint64_t err_cap) {
  if (d.lostMessage) return mb_fail(err, err_cap, MB_E_DEVICE_LOST, @"%@", d.lostMessage);
  id<MTLCommandBuffer> cb = d.pending;
  if (!cb) return MB_OK;
  uint64_t sinceMs = (mb_now_ns() - d.pendingSinceNs) / 1000000ull;
  uint64_t leftMs = sinceMs >= MB_PENDING_WAIT_MS ? 0 : MB_PENDING_WAIT_MS - sinceMs;
  long ended = dispatch_semaphore_wait(
      d.pendingDone, dispatch_time(DISPATCH_TIME_NOW, (int64_t)(leftMs * NSEC_PER_MSEC)));
  NSString *kernels = d.pendingKernels;
  if (ended != 0)
    return mb_device_lost(
        d,
        [NSString stringWithFormat:@"%@ timed out and was still running on the GPU %llu s later",
                                   kernels, (unsigned long long)(MB_PENDING_WAIT_MS / 1000)],
        err, err_cap);
  d.pending = nil;
  d.pendingDone = nil;
  if (cb.status == MTLCommandBufferStatusError && mb_failure_kind(cb.error) == MBFailureLost)
    return mb_device_lost(d,
                          [NSString stringWithFormat:@"Metal revoked GPU access when %@ timed out "
                                                     @"(%@)",
                                                     kernels, mb_error_text(cb.error)],
                          err, err_cap);
  return MB_OK;
}

/* The launches of a command, in order (see mb_command_end_launch). */
static NSArray<NSArray<MetalBenchBridgeStep *> *> *mb_launches(MetalBenchBridgeCommand *c) {
  NSMutableArray<NSArray<MetalBenchBridgeStep *> *> *launches = [NSMutableArray array];
  NSMutableArray<NSNumber *> *ends = [c.launchEnds mutableCopy];
  if (ends.count == 0 || ends.lastObject.unsignedIntegerValue < c.steps.count)
    [ends addObject:@(c.steps.count)];
  NSUInteger from = 0;
  for (NSNumber *end in ends) {
    NSUInteger to = end.unsignedIntegerValue;
    [launches addObject:[c.steps subarrayWithRange:NSMakeRange(from, to - from)]];
    from = to;
  }
  return launches;
}

/* The passes of one sample: launches first .. first + batch - 1 of the run,
 * launch j executing launches[j mod L]; *position gets each pass's place
 * in the batch (0-based). */
static NSArray<MetalBenchBridgeStep *> *mb_sample_passes(
    NSArray<NSArray<MetalBenchBridgeStep *> *> *launches, uint64_t first, uint32_t batch,
    NSArray<NSNumber *> **position) {
  NSMutableArray<MetalBenchBridgeStep *> *passes = [NSMutableArray array];
  NSMutableArray<NSNumber *> *where = [NSMutableArray array];
  for (uint32_t b = 0; b < batch; b++) {
    NSArray<MetalBenchBridgeStep *> *launch = launches[(NSUInteger)((first + b) % launches.count)];
    [passes addObjectsFromArray:launch];
    for (NSUInteger i = 0; i < launch.count; i++) [where addObject:@(b)];
  }
  *position = where;
  return passes;
}

/* The distinct kernels of some steps, "relu, softmax". */
static NSString *mb_kernel_names(NSArray<MetalBenchBridgeStep *> *steps) {
  NSMutableOrderedSet<NSString *> *names = [NSMutableOrderedSet orderedSet];
  for (MetalBenchBridgeStep *s in steps) [names addObject:s.pipeline.functionName];
  return [names.array componentsJoinedByString:@", "];
}

/* A counter sample buffer per MB_MAX_COUNTER_SAMPLES / 2 passes and a pass
 * descriptor per pass, kept on the command; NO if Metal would not make them
 * (the run then takes the command buffer's span). */
static BOOL mb_prepare_counters(MetalBenchBridgeCommand *c, uint64_t passes) {
  MetalBenchBridgeDevice *d = c.owner;
  const uint64_t perBuffer = MB_MAX_COUNTER_SAMPLES / 2;
  if (!d.timestampCounters || passes == 0 || passes > 64 * perBuffer) return NO;
  @try {
    while ((uint64_t)c.sampleBuffers.count * perBuffer < passes) {
      MTLCounterSampleBufferDescriptor *desc = [MTLCounterSampleBufferDescriptor new];
      desc.counterSet = d.timestampCounters;
      desc.storageMode = MTLStorageModeShared;
      desc.sampleCount = MB_MAX_COUNTER_SAMPLES;
      desc.label = @"metalbench pass timestamps";
      NSError *error = nil;
      id<MTLCounterSampleBuffer> buffer =
          [d.device newCounterSampleBufferWithDescriptor:desc error:&error];
      if (!buffer) return NO;
      [c.sampleBuffers addObject:buffer];
    }
    while ((uint64_t)c.passDescriptors.count < passes) {
      NSUInteger i = c.passDescriptors.count;
      MTLComputePassDescriptor *pd = [MTLComputePassDescriptor computePassDescriptor];
      pd.dispatchType = MTLDispatchTypeSerial;
      MTLComputePassSampleBufferAttachmentDescriptor *a = pd.sampleBufferAttachments[0];
      a.sampleBuffer = c.sampleBuffers[i / perBuffer];
      a.startOfEncoderSampleIndex = 2 * (i % perBuffer);
      a.endOfEncoderSampleIndex = 2 * (i % perBuffer) + 1;
      [c.passDescriptors addObject:pd];
    }
  } @catch (id e) {
    (void)e;
    return NO;
  }
  return YES;
}

typedef struct {
  uint64_t start, end;
} mb_interval;

static int mb_interval_order(const void *a, const void *b) {
  const mb_interval *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start ? 1 : 0;
}

/* GPU ticks the sample's passes kept the GPU busy: the union of their
 * [start, end] timestamp intervals (passes that overlap count once). -1 if
 * a timestamp is missing, or older than `notBefore` (a GPU timestamp taken
 * before the command buffer was made: a slot the GPU did not write still
 * holds an earlier sample's value). */
static double mb_busy_ticks(MetalBenchBridgeCommand *c, NSUInteger passes, uint64_t notBefore) {
  const NSUInteger perBuffer = MB_MAX_COUNTER_SAMPLES / 2;
  NSMutableData *store = [NSMutableData dataWithLength:passes * sizeof(mb_interval)];
  mb_interval *iv = store.mutableBytes;
  for (NSUInteger done = 0, b = 0; done < passes; b++) {
    NSUInteger n = MIN(perBuffer, passes - done);
    NSData *data = [c.sampleBuffers[b] resolveCounterRange:NSMakeRange(0, 2 * n)];
    if (!data || data.length < 2 * n * sizeof(MTLCounterResultTimestamp)) return -1;
    const MTLCounterResultTimestamp *ts = data.bytes;
    for (NSUInteger k = 0; k < n; k++) {
      uint64_t s = ts[2 * k].timestamp, e = ts[2 * k + 1].timestamp;
      if (s < notBefore || s == MTLCounterErrorValue || e == MTLCounterErrorValue || e < s)
        return -1;
      iv[done + k] = (mb_interval){s, e};
    }
    done += n;
  }
  qsort(iv, passes, sizeof *iv, mb_interval_order);
  double busy = 0;
  uint64_t from = iv[0].start, to = iv[0].end;
  for (NSUInteger k = 1; k < passes; k++) {
    if (iv[k].start > to) {
      busy += (double)(to - from);
      from = iv[k].start;
    }
    if (iv[k].end > to) to = iv[k].end;
  }
  return busy + (double)(to - from);
}

/*
 * Host ns per GPU timestamp tick: the host time (CLOCK_UPTIME_RAW) and GPU
 * ticks elapsed since the first pair taken on this device, at least
 * MB_CALIBRATION_MIN_NS apart (an early run may sleep that long once). The
 * span grows with every run, so the ratio gets more exact. 0 if the GPU
 * clock does not advance.
 */
static double mb_ns_per_tick(MetalBenchBridgeDevice *d) {
  for (int attempt = 0; attempt < 3; attempt++) {
    MTLTimestamp cpu = 0, gpu = 0;
    [d.device sampleTimestamps:&cpu gpuTimestamp:&gpu];
    uint64_t now = mb_now_ns();
    if (d.calibrationNs == 0 || gpu < d.calibrationTicks) { /* none yet, or a restarted clock */
      d.calibrationTicks = gpu;
      d.calibrationNs = now;
      usleep((useconds_t)(MB_CALIBRATION_MIN_NS / 1000));
      continue;
    }
    uint64_t span = now - d.calibrationNs;
    if (span < MB_CALIBRATION_MIN_NS) {
      usleep((useconds_t)((MB_CALIBRATION_MIN_NS - span) / 1000 + 1));
      continue;
    }
    if (gpu == d.calibrationTicks) return 0;
    d.nsPerTick = (double)span / (double)(gpu - d.calibrationTicks);
    return d.nsPerTick;
  }
  return 0;
}

/* Bind a step's pipeline, buffers, bytes and threadgroup memory and dispatch it. */
static void mb_encode_step(id<MTLComputeCommandEncoder> enc, MetalBenchBridgeStep *s) {
  [enc setComputePipelineState:s.pipeline.state];
  [s.slots enumerateKeysAndObjectsUsingBlock:^(NSNumber *key, MetalBenchBridgeSlot *slot,
                                               BOOL *stop) {
    (void)stop;
    NSUInteger index = key.unsignedIntegerValue;
    if (slot.buffer)
      [enc setBuffer:slot.buffer.buffer offset:(NSUInteger)slot.offset atIndex:index];
    else
      [enc setBytes:slot.bytes.bytes length:slot.bytes.length atIndex:index];
  }];
  [s.threadgroupLengths
      enumerateKeysAndObjectsUsingBlock:^(NSNumber *key, NSNumber *len, BOOL *stop) {
        (void)stop;
        [enc setThreadgroupMemoryLength:len.unsignedIntegerValue atIndex:key.unsignedIntegerValue];
      }];
  if (s.mode == MB_DISPATCH_THREADS)
    [enc dispatchThreads:s.grid threadsPerThreadgroup:s.group];
  else
    [enc dispatchThreadgroups:s.grid threadsPerThreadgroup:s.group];
  [enc endEncoding];
}

/* How one sample went. */
typedef struct {
  double wallNs;    /* host time of the whole sample */
  double spanNs;    /* GPUEndTime - GPUStartTime */
  double busyTicks; /* pass timestamps: GPU ticks inside the passes; -1 if not taken */
} mb_sample_times;

/*
 * One command buffer: make it, encode the passes, commit, wait. The host
 * clock starts before the command buffer is made. `diagnose` turns on
 * per-encoder error status (and batch positions in the labels) for a re-run
 * of a failed sample. A command buffer that ends in error gives MB_E_EXECUTION
 * with its error in *failure, for the caller to read.
 */
static int32_t mb_run_passes(MetalBenchBridgeCommand *c, NSArray<MetalBenchBridgeStep *> *passes,
                             NSArray<NSNumber *> *position, uint32_t batch, BOOL diagnose,
                             BOOL counters, mb_sample_times *t, NSError **failure, char *err,
                             uint64_t err_cap) {
  MetalBenchBridgeDevice *d = c.owner;
  t->wallNs = 0;
  t->spanNs = NAN;
  t->busyTicks = -1;
  dispatch_semaphore_t done = d.timeoutMs ? dispatch_semaphore_create(0) : nil;
  MTLTimestamp cpuBefore = 0, gpuBefore = 0;
  if (counters) [d.device sampleTimestamps:&cpuBefore gpuTimestamp:&gpuBefore];

  uint64_t t0 = mb_now_ns();
  id<MTLCommandQueue> queue = d.queue;
  id<MTLCommandBuffer> cb = nil;
  if ([queue respondsToSelector:@selector(commandBufferWithDescriptor:)]) {
    MTLCommandBufferDescriptor *desc = [MTLCommandBufferDescriptor new];
    desc.retainedReferences = YES;
    desc.errorOptions = diagnose ? MTLCommandBufferErrorOptionEncoderExecutionStatus
                                 : MTLCommandBufferErrorOptionNone;
    cb = [queue commandBufferWithDescriptor:desc];
  } else {
    cb = [queue commandBuffer];
  }
  if (!cb) return mb_fail(err, err_cap, MB_E_RESOURCE, @"Metal could not create a command buffer");
  for (NSUInteger i = 0; i < passes.count; i++) {
    MetalBenchBridgeStep *s = passes[i];
    id<MTLComputeCommandEncoder> enc = counters
                                           ? [cb computeCommandEncoderWithDescriptor:
                                                     c.passDescriptors[i]]
                                           : [cb computeCommandEncoder];
    if (!enc)
      return mb_fail(err, err_cap, MB_E_RESOURCE,
                     @"%@: Metal could not create a compute command encoder", s.label);
    enc.label = diagnose && batch > 1
                    ? [NSString stringWithFormat:@"%@ (launch %u of the sample's %u)", s.label,
                                                 position[i].unsignedIntValue + 1, batch]
                    : s.label;
    mb_encode_step(enc, s);
  }
  if (done) {
    [cb addCompletedHandler:^(id<MTLCommandBuffer> finished) {
      (void)finished;
      dispatch_semaphore_signal(done);
    }];
  }
  [cb commit];
  if (!done) {
    [cb waitUntilCompleted];
  } else {
    /* A time limit of timeout_ms per pass, for the whole sample. */
    uint64_t n = passes.count;
    uint64_t limitMs = d.timeoutMs > MB_MAX_WAIT_MS / n ? MB_MAX_WAIT_MS : d.timeoutMs * n;
    long waited = dispatch_semaphore_wait(
        done, dispatch_time(DISPATCH_TIME_NOW, (int64_t)(limitMs * NSEC_PER_MSEC)));
    if (waited != 0) {
      /* Still running: kept, and waited for before the next run (mb_settle). */
      NSString *kernels = mb_kernel_names(passes);
      d.pending = cb;
      d.pendingDone = done;
      d.pendingKernels = kernels;
      d.pendingSinceNs = mb_now_ns();
      mb_note_failure(d, [kernels stringByAppendingString:@" (time-out)"]);
      mb_renew_queue(d);
      return mb_fail(err, err_cap, MB_E_TIMEOUT,
                     @"%@ did not finish within %llu ms (timeout_ms=%llu per dispatch, %llu "
                     @"dispatches; an endless loop?); the next run waits for the GPU to end it",
                     kernels, (unsigned long long)limitMs, (unsigned long long)d.timeoutMs,
                     (unsigned long long)n);
    }
    [cb waitUntilCompleted]; /* already complete: makes status and times final */
  }
  uint64_t t1 = mb_now_ns();

  MTLCommandBufferStatus status = cb.status;
  if (status != MTLCommandBufferStatusCompleted) {
    if (status == MTLCommandBufferStatusError || cb.error) {
      *failure = cb.error ?: [NSError errorWithDomain:MTLCommandBufferErrorDomain
                                                 code:MTLCommandBufferErrorInternal
                                             userInfo:nil];
      return MB_E_EXECUTION;
    }
    return mb_fail(err, err_cap, MB_E_INTERNAL,
                   @"the command buffer ended in status %lu, not completed",
                   (unsigned long)status);
  }
  t->wallNs = (double)(t1 - t0);
  CFTimeInterval gpuStart = cb.GPUStartTime, gpuEnd = cb.GPUEndTime;
  if (gpuStart > 0 && gpuEnd >= gpuStart) t->spanNs = (gpuEnd - gpuStart) * 1e9;
  if (counters) t->busyTicks = mb_busy_ticks(c, passes.count, gpuBefore);
  return MB_OK;
}

/* The pass a diagnosed command buffer names as faulted (else affected). */
static NSString *mb_failing_pass(NSError *e) {
  NSObject *infos = e.userInfo[MTLCommandBufferEncoderInfoErrorKey];
  if (![infos isKindOfClass:[NSArray class]]) return nil;
  MTLCommandEncoderErrorState order[2] = {MTLCommandEncoderErrorStateFaulted,
                                          MTLCommandEncoderErrorStateAffected};
  for (int k = 0; k < 2; k++) {
    for (id<MTLCommandBufferEncoderInfo> info in (NSArray *)infos) {
      if (![info respondsToSelector:@selector(errorState)] ||
          ![info respondsToSelector:@selector(label)] || info.errorState != order[k])
        continue;
      NSString *label = info.label.length ? info.label : @"(unlabelled encoder)";
      return k == 0 ? label : [label stringByAppendingString:@" (affected)"];
    }
  }
  return nil;
}

/*
 * One sample of a run. A command buffer that fails is classified: access
 * revoked makes the device lost; a watchdog time-out is a time-out; a fault
 * is run once more with per-encoder status to name the failing pass (the
 * timed command buffers carry none).
 */
static int32_t mb_sample(MetalBenchBridgeCommand *c,
                         NSArray<NSArray<MetalBenchBridgeStep *> *> *launches, uint64_t first,
                         uint32_t batch, BOOL counters, mb_sample_times *t, char *err,
                         uint64_t err_cap) {
  MetalBenchBridgeDevice *d = c.owner;
  NSArray<NSNumber *> *position = nil;
  NSArray<MetalBenchBridgeStep *> *passes = mb_sample_passes(launches, first, batch, &position);
  NSError *failure = nil;
  int32_t st =
      mb_run_passes(c, passes, position, batch, NO, counters, t, &failure, err, err_cap);
  if (st != MB_E_EXECUTION || !failure) return st;

  NSString *kernels = mb_kernel_names(passes);
  mb_renew_queue(d);
  switch (mb_failure_kind(failure)) {
    case MBFailureLost:
      return mb_device_lost(
          d,
          [NSString stringWithFormat:@"Metal refused to run %@ (%@)", kernels,
                                     mb_error_text(failure)],
          err, err_cap);
    case MBFailureTimeout:
      mb_note_failure(d, [kernels stringByAppendingString:@" (time-out)"]);
      return mb_fail(err, err_cap, MB_E_TIMEOUT, @"%@ was stopped by the GPU watchdog: %@",
                     kernels, mb_error_text(failure));
    case MBFailureFault: break;
  }
  mb_sample_times again = {0, 0, -1};
  NSError *diagnosed = nil;
  st = mb_run_passes(c, passes, position, batch, YES, NO, &again, &diagnosed, err, err_cap);
  if (st == MB_E_TIMEOUT) return st; /* the re-run hung: its message stands */
  if (st != MB_E_EXECUTION || !diagnosed) {
    mb_note_failure(d, [kernels stringByAppendingString:@" (fault)"]);
    return mb_fail(err, err_cap, MB_E_EXECUTION,
                   @"%@ failed on the GPU: %@ (%@, so the failing dispatch is not known)",
                   kernels, mb_error_text(failure),
                   st == MB_OK ? @"it ran cleanly when re-run with per-encoder status"
                               : @"the re-run with per-encoder status did not start");
  }
  mb_renew_queue(d);
  MBFailure kind = mb_failure_kind(diagnosed);
  if (kind == MBFailureLost) /* this kernel's own fault was the last straw */
    return mb_device_lost(
        d,
        [NSString stringWithFormat:@"%@ faulted (%@), and Metal then revoked GPU access (%@)",
                                   kernels, mb_error_text(failure), mb_error_text(diagnosed)],
        err, err_cap);
  NSString *where = mb_failing_pass(diagnosed) ?: kernels;
  mb_note_failure(d, [where stringByAppendingString:
                                kind == MBFailureTimeout ? @" (time-out)" : @" (fault)"]);
  return mb_fail(err, err_cap, kind == MBFailureTimeout ? MB_E_TIMEOUT : MB_E_EXECUTION,
                 @"%@ failed on the GPU: %@", where, mb_error_text(diagnosed));
}

int32_t mb_command_run(mb_command *cmd, uint32_t samples, uint32_t batch, double *wall_ns,
                       double *device_ns, char *err, uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(c, MetalBenchBridgeCommand, cmd, "command")
  if (samples == 0 || batch == 0)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"run: samples (%u) and batch (%u) must both be at least 1", samples, batch);
  if (!wall_ns || !device_ns)
    return mb_fail(err, err_cap, MB_E_ARGUMENT, @"run: the wall_ns or device_ns array is null");
  if (c.steps.count == 0)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"run: no steps recorded (call mb_command_dispatch first)");
  MetalBenchBridgeDevice *d = c.owner;
  int32_t st = mb_settle(d, err, err_cap);
  if (st != MB_OK) return st;

  NSArray<NSArray<MetalBenchBridgeStep *> *> *launches = mb_launches(c);
  NSUInteger longest = 0;
  for (NSArray<MetalBenchBridgeStep *> *launch in launches) longest = MAX(longest, launch.count);
  BOOL counters = d.timestampCounters && mb_prepare_counters(c, (uint64_t)batch * longest);
  NSMutableData *ticksStore = [NSMutableData dataWithLength:samples * sizeof(double)];
  double *ticks = ticksStore.mutableBytes;
  for (uint32_t i = 0; i < samples; i++) {
    @autoreleasepool {
      mb_sample_times t;
      st = mb_sample(c, launches, (uint64_t)i * batch, batch, counters, &t, err, err_cap);
      if (st != MB_OK) return st;
      wall_ns[i] = t.wallNs / (double)batch;
      device_ns[i] = t.spanNs / (double)batch; /* replaced below when timestamps resolved */
      ticks[i] = t.busyTicks;
    }
  }
  if (d.timestampCounters) {
    double nsPerTick = counters ? mb_ns_per_tick(d) : 0;
    uint64_t fallbacks = 0;
    for (uint32_t i = 0; i < samples; i++) {
      if (nsPerTick > 0 && ticks[i] >= 0)
        device_ns[i] = ticks[i] * nsPerTick / (double)batch;
      else
        fallbacks++;
    }
    d.deviceTimeFallbacks += fallbacks;
  }
  return MB_OK;
  MB_END
}

int32_t mb_command_capture(mb_command *cmd, const char *trace_path, char *err, uint64_t err_cap) {
  MB_BEGIN
  MB_HANDLE(c, MetalBenchBridgeCommand, cmd, "command")
  NSString *path = mb_string(trace_path).stringByExpandingTildeInPath;
  if (path.length == 0)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"capture: the trace path is null, empty or not UTF-8");
  if (![path.pathExtension isEqualToString:@"gputrace"])
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"capture: %@ must end in .gputrace", path);
  struct stat sb;
  if (lstat(path.fileSystemRepresentation, &sb) == 0)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"capture: %@ already exists; Metal writes a new trace only", path);
  NSString *parent = path.stringByStandardizingPath.stringByDeletingLastPathComponent;
  BOOL isDir = NO;
  if (parent.length > 0 &&
      (![[NSFileManager defaultManager] fileExistsAtPath:parent isDirectory:&isDir] || !isDir))
    return mb_fail(err, err_cap, MB_E_ARGUMENT, @"capture: directory %@ does not exist", parent);
  if (c.steps.count == 0)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"capture: no steps recorded (call mb_command_dispatch first)");
  int32_t st = mb_settle(c.owner, err, err_cap);
  if (st != MB_OK) return st;

  MTLCaptureManager *manager = [MTLCaptureManager sharedCaptureManager];
  if (!manager || ![manager supportsDestination:MTLCaptureDestinationGPUTraceDocument])
    return mb_fail(err, err_cap, MB_E_UNSUPPORTED,
                   @"GPU capture is not enabled in this process: start it with "
                   @"MTL_CAPTURE_ENABLED=1 in its environment (needed outside Xcode), e.g. "
                   @"MTL_CAPTURE_ENABLED=1 metalbench ...");
  if (manager.isCapturing)
    return mb_fail(err, err_cap, MB_E_EXECUTION,
                   @"capture: another GPU capture is already running in this process");

  MTLCaptureDescriptor *desc = [MTLCaptureDescriptor new];
  desc.captureObject = c.owner.queue; /* only this queue's command buffers */
  desc.destination = MTLCaptureDestinationGPUTraceDocument;
  desc.outputURL = [NSURL fileURLWithPath:path];
  NSError *error = nil;
  if (![manager startCaptureWithDescriptor:desc error:&error]) {
    NSInteger code = error.code;
    BOOL captureDomain = [error.domain isEqualToString:MTLCaptureErrorDomain];
    int32_t status = MB_E_EXECUTION;
    NSString *hint = @"";
    if (captureDomain && code == MTLCaptureErrorNotSupported) {
      status = MB_E_UNSUPPORTED;
      hint = @" (run with MTL_CAPTURE_ENABLED=1)";
    } else if (captureDomain && code == MTLCaptureErrorInvalidDescriptor) {
      status = MB_E_ARGUMENT;
    }
    return mb_fail(err, err_cap, status, @"capture to %@ did not start: %@%@", path,
                   error.localizedDescription ?: @"(no message)", hint);
  }
  mb_sample_times t;
  @try {
    st = mb_sample(c, mb_launches(c), 0, 1, NO, &t, err, err_cap); /* launch 0, once */
  } @finally {
    [manager stopCapture];
  }
  return st;
  MB_END
}

void mb_command_free(mb_command *cmd) {
  if (!cmd) return;
  MB_VOID_BEGIN
  (void)CFBridgingRelease(cmd); /* command buffers in flight retain what they use */
  MB_VOID_END
}
