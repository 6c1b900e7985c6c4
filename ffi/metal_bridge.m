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
 * Timing design (mb_command_run)
 * One command buffer per sample holding `batch` repetitions of the step
 * list, with ONE COMPUTE ENCODER PER STEP REPETITION (not one encoder with
 * memory barriers). Reasons: Apple GPUs sample timestamps only at encoder
 * (pass) boundaries, so a dispatch per encoder is what gives per-dispatch
 * GPU times in a capture and keeps device_ns for batch=1 and one step the
 * time of exactly that dispatch; consecutive encoders on tracked (default)
 * shared buffers are ordered by Metal's hazard tracking, so each step sees
 * the writes of the ones before it without relying on barrier scope; and
 * MTLCommandBufferErrorOptionEncoderExecutionStatus reports status per
 * encoder, so a fault names the failing step's kernel. The cost is a small
 * per-encoder gap on the GPU, which is included in device_ns for batch > 1.
 */

#import <Foundation/Foundation.h>
#import <Metal/Metal.h>
#include <CoreFoundation/CoreFoundation.h>
#include <IOKit/IOKitLib.h>
#include <dispatch/dispatch.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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
@property(copy, nonatomic) NSString *label; /* "step N: kernel" */
@end
@implementation MetalBenchBridgeStep
@end

MB_HIDDEN @interface MetalBenchBridgeCommand : NSObject
@property(strong, nonatomic) MetalBenchBridgeDevice *owner;
@property(strong, nonatomic) MetalBenchBridgePipeline *pipeline;
@property(strong, nonatomic) NSMutableDictionary<NSNumber *, MetalBenchBridgeSlot *> *slots;
@property(strong, nonatomic) NSMutableDictionary<NSNumber *, NSNumber *> *threadgroupLengths;
@property(strong, nonatomic) NSMutableArray<MetalBenchBridgeStep *> *steps;
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

/* Set one constant from its text; NO when the text is not a value of its type. */
static BOOL mb_set_constant(MTLFunctionConstantValues *values, MTLFunctionConstant *c,
                            NSString *text) {
  NSScanner *scan = [NSScanner scannerWithString:text];
  long long i = 0;
  unsigned long long u = 0;
  double f = 0;
  switch (c.type) {
    case MTLDataTypeBool: {
      int b = [text isEqualToString:@"true"]    ? 1
              : [text isEqualToString:@"false"] ? 0
                                                : mb_parse_bool(text);
      bool v = b == 1;
      if (b < 0) return NO;
      [values setConstantValue:&v type:c.type atIndex:c.index];
      return YES;
    }
    case MTLDataTypeInt:
    case MTLDataTypeShort:
    case MTLDataTypeChar: {
      if (![scan scanLongLong:&i] || !scan.atEnd) return NO;
      int32_t v32 = (int32_t)i;
      int16_t v16 = (int16_t)i;
      int8_t v8 = (int8_t)i;
      const void *v = c.type == MTLDataTypeInt     ? (const void *)&v32
                      : c.type == MTLDataTypeShort ? (const void *)&v16
                                                   : (const void *)&v8;
      [values setConstantValue:v type:c.type atIndex:c.index];
      return YES;
    }
    case MTLDataTypeUInt:
    case MTLDataTypeUShort:
    case MTLDataTypeUChar: {
      if (![scan scanUnsignedLongLong:&u] || !scan.atEnd) return NO;
      uint32_t v32 = (uint32_t)u;
      uint16_t v16 = (uint16_t)u;
      uint8_t v8 = (uint8_t)u;
      const void *v = c.type == MTLDataTypeUInt     ? (const void *)&v32
                      : c.type == MTLDataTypeUShort ? (const void *)&v16
                                                    : (const void *)&v8;
      [values setConstantValue:v type:c.type atIndex:c.index];
      return YES;
    }
    case MTLDataTypeFloat:
    case MTLDataTypeHalf: {
      if (![scan scanDouble:&f] || !scan.atEnd) return NO;
      float v32 = (float)f;
      _Float16 v16 = (_Float16)f;
      const void *v = c.type == MTLDataTypeFloat ? (const void *)&v32 : (const void *)&v16;
      [values setConstantValue:v type:c.type atIndex:c.index];
      return YES;
    }
    default:
      return NO;
  }
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
    if (!mb_set_constant(values, c, text)) {
      *problem = [NSString stringWithFormat:@"function constant '%@' = '%@': not a value of its "
                                            @"type (MTLDataType %lu)",
                                            c.name, text, (unsigned long)c.type];
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
    /* An offline library: the caller chose the per-chip file. */
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

    MTLCompileOptions *co = [MTLCompileOptions new];
    NSString *fast = opts[@"fast_math"];
    if (fast.length > 0) {
      int on = mb_parse_bool(fast);
      if (on < 0)
        return mb_fail(err, err_cap, MB_E_ARGUMENT, @"fast_math=%@: use 0 or 1", fast);
      if ([co respondsToSelector:NSSelectorFromString(@"setMathMode:")]) {
        /* macOS 15+: mathMode replaces fastMathEnabled. */
        [co setValue:@(on ? MB_MATH_MODE_FAST : MB_MATH_MODE_SAFE) forKey:@"mathMode"];
        if ([co respondsToSelector:NSSelectorFromString(@"setMathFloatingPointFunctions:")])
          [co setValue:@(on ? MB_MATH_FP_FUNCTIONS_FAST : MB_MATH_FP_FUNCTIONS_PRECISE)
                forKey:@"mathFloatingPointFunctions"];
      } else {
        co.fastMathEnabled = on ? YES : NO;
      }
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
  if (offset >= b.length)
    return mb_fail(err, err_cap, MB_E_ARGUMENT,
                   @"buffer(%u): offset %llu is not inside the %llu-byte buffer", index,
                   (unsigned long long)offset, (unsigned long long)b.length);
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

  /* Threadgroup memory: the kernel's static part plus every allocation set. */
  uint64_t tgTotal = p.state.staticThreadgroupMemoryLength;
  for (NSNumber *len in c.threadgroupLengths.allValues) tgTotal += len.unsignedLongLongValue;
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
  step.threadgroupLengths = c.threadgroupLengths; /* copy property: a snapshot */
  step.mode = mode;
  step.grid = grid;
  step.group = group;
  step.label =
      [NSString stringWithFormat:@"step %lu: %@", (unsigned long)c.steps.count + 1, kernel];
  [c.steps addObject:step];
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

/* A fresh command queue after a failure, so that later work does not queue
 * behind a broken or still-running command buffer. */
static void mb_renew_queue(MetalBenchBridgeDevice *d) {
  id<MTLCommandQueue> q = [d.device newCommandQueue];
  if (q) d.queue = q;
}

/* The error of a command buffer that ended in MTLCommandBufferStatusError. */
static int32_t mb_command_buffer_failure(MetalBenchBridgeCommand *c, id<MTLCommandBuffer> cb,
                                         uint32_t batch, char *err, uint64_t err_cap) {
  NSError *e = cb.error;
  NSInteger code = e ? e.code : MTLCommandBufferErrorInternal;
  BOOL metalDomain = e && [e.domain isEqualToString:MTLCommandBufferErrorDomain];
  NSString *codeName = metalDomain ? mb_command_buffer_error_name(code)
                                   : [NSString stringWithFormat:@"%@ code %ld",
                                                                e.domain ?: @"(no domain)",
                                                                (long)code];
  NSString *description = e.localizedDescription ?: @"(Metal gave no description)";
  /* The GPU watchdog reports through IOGPU text such as "Caused GPU Timeout
   * Error (...kIOGPUCommandBufferCallbackErrorTimeout)" or "Impacting
   * Interactivity (...ErrorImpactingInteractivity)": both are time-outs. */
  BOOL timeout = (metalDomain && code == MTLCommandBufferErrorTimeout) ||
                 [description rangeOfString:@"Timeout"].location != NSNotFound ||
                 [description rangeOfString:@"ImpactingInteractivity"].location != NSNotFound;

  /* Which encoder faulted (MTLCommandBufferErrorOptionEncoderExecutionStatus). */
  NSString *where = nil;
  NSUInteger nsteps = c.steps.count;
  NSObject *infos = e.userInfo[MTLCommandBufferEncoderInfoErrorKey];
  if ([infos isKindOfClass:[NSArray class]]) {
    NSArray *list = (NSArray *)infos;
    MTLCommandEncoderErrorState order[2] = {MTLCommandEncoderErrorStateFaulted,
                                            MTLCommandEncoderErrorStateAffected};
    for (int k = 0; k < 2 && !where; k++) {
      for (NSUInteger i = 0; i < list.count; i++) {
        id<MTLCommandBufferEncoderInfo> info = list[i];
        if (![info respondsToSelector:@selector(errorState)] ||
            ![info respondsToSelector:@selector(label)])
          continue;
        if (info.errorState != order[k]) continue;
        NSString *label = info.label.length ? info.label : @"(unlabelled encoder)";
        if (list.count == (NSUInteger)batch * nsteps && batch > 1)
          where = [NSString stringWithFormat:@"%@ (repetition %lu of %u)%@", label,
                                             (unsigned long)(i / nsteps + 1), batch,
                                             k == 0 ? @"" : @" was affected"];
        else
          where = k == 0 ? label : [label stringByAppendingString:@" was affected"];
        break;
      }
    }
  }
  if (!where) {
    NSMutableOrderedSet<NSString *> *kernels = [NSMutableOrderedSet orderedSet];
    for (MetalBenchBridgeStep *s in c.steps) [kernels addObject:s.pipeline.functionName];
    where = [NSString stringWithFormat:@"the command buffer running %@",
                                       [kernels.array componentsJoinedByString:@", "]];
  }
  mb_renew_queue(c.owner);
  return mb_fail(err, err_cap, timeout ? MB_E_TIMEOUT : MB_E_EXECUTION,
                 @"%@ failed on the GPU: %@: %@", where, codeName, description);
}

/* Encode `batch` repetitions of the steps into cb: one encoder per step. */
static int32_t mb_encode(MetalBenchBridgeCommand *c, id<MTLCommandBuffer> cb, uint32_t batch,
                         char *err, uint64_t err_cap) {
  for (uint32_t r = 0; r < batch; r++) {
    for (MetalBenchBridgeStep *s in c.steps) {
      id<MTLComputeCommandEncoder> enc = [cb computeCommandEncoder];
      if (!enc)
        return mb_fail(err, err_cap, MB_E_RESOURCE,
                       @"%@: Metal could not create a compute command encoder", s.label);
      enc.label = s.label;
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
            [enc setThreadgroupMemoryLength:len.unsignedIntegerValue
                                    atIndex:key.unsignedIntegerValue];
          }];
      if (s.mode == MB_DISPATCH_THREADS)
        [enc dispatchThreads:s.grid threadsPerThreadgroup:s.group];
      else
        [enc dispatchThreadgroups:s.grid threadsPerThreadgroup:s.group];
      [enc endEncoding];
    }
  }
  return MB_OK;
}

/* One sample: encode, commit, wait; times per repetition. */
static int32_t mb_run_sample(MetalBenchBridgeCommand *c, uint32_t batch, double *wall_ns,
                             double *device_ns, char *err, uint64_t err_cap) {
  MetalBenchBridgeDevice *d = c.owner;
  id<MTLCommandQueue> queue = d.queue;
  id<MTLCommandBuffer> cb = nil;
  if ([queue respondsToSelector:@selector(commandBufferWithDescriptor:)]) {
    MTLCommandBufferDescriptor *desc = [MTLCommandBufferDescriptor new];
    desc.retainedReferences = YES;
    desc.errorOptions = MTLCommandBufferErrorOptionEncoderExecutionStatus;
    cb = [queue commandBufferWithDescriptor:desc];
  } else {
    cb = [queue commandBuffer];
  }
  if (!cb) return mb_fail(err, err_cap, MB_E_RESOURCE, @"Metal could not create a command buffer");
  cb.label = @"metalbench";

  int32_t st = mb_encode(c, cb, batch, err, err_cap);
  if (st != MB_OK) return st;

  uint64_t t0 = 0, t1 = 0;
  if (d.timeoutMs == 0) {
    t0 = mb_now_ns();
    [cb commit];
    [cb waitUntilCompleted];
    t1 = mb_now_ns();
  } else {
    /* A time limit of timeout_ms per dispatch, for the whole sample. */
    uint64_t dispatches = (uint64_t)batch * c.steps.count;
    uint64_t limitMs = d.timeoutMs > MB_MAX_WAIT_MS / dispatches ? MB_MAX_WAIT_MS
                                                                  : d.timeoutMs * dispatches;
    dispatch_semaphore_t done = dispatch_semaphore_create(0);
    [cb addCompletedHandler:^(id<MTLCommandBuffer> finished) {
      (void)finished;
      dispatch_semaphore_signal(done);
    }];
    t0 = mb_now_ns();
    [cb commit];
    long waited = dispatch_semaphore_wait(
        done, dispatch_time(DISPATCH_TIME_NOW, (int64_t)(limitMs * NSEC_PER_MSEC)));
    t1 = mb_now_ns();
    if (waited != 0) {
      NSMutableOrderedSet<NSString *> *kernels = [NSMutableOrderedSet orderedSet];
      for (MetalBenchBridgeStep *s in c.steps) [kernels addObject:s.pipeline.functionName];
      mb_renew_queue(d);
      return mb_fail(err, err_cap, MB_E_TIMEOUT,
                     @"%@ did not finish within %llu ms (timeout_ms=%llu per dispatch, %llu "
                     @"dispatches); it may still be running on the GPU (an endless loop?)",
                     [kernels.array componentsJoinedByString:@", "], (unsigned long long)limitMs,
                     (unsigned long long)d.timeoutMs, (unsigned long long)dispatches);
    }
    [cb waitUntilCompleted]; /* already complete: makes status and times final */
  }

  MTLCommandBufferStatus status = cb.status;
  if (status != MTLCommandBufferStatusCompleted) {
    if (status == MTLCommandBufferStatusError || cb.error)
      return mb_command_buffer_failure(c, cb, batch, err, err_cap);
    return mb_fail(err, err_cap, MB_E_INTERNAL,
                   @"the command buffer ended in status %lu, not completed",
                   (unsigned long)status);
  }

  *wall_ns = (double)(t1 - t0) / (double)batch;
  CFTimeInterval gpuStart = cb.GPUStartTime, gpuEnd = cb.GPUEndTime;
  *device_ns = (gpuStart > 0 && gpuEnd >= gpuStart) ? (gpuEnd - gpuStart) * 1e9 / (double)batch
                                                    : (double)NAN; /* no timestamps */
  return MB_OK;
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
  for (uint32_t i = 0; i < samples; i++) {
    @autoreleasepool {
      int32_t st = mb_run_sample(c, batch, &wall_ns[i], &device_ns[i], err, err_cap);
      if (st != MB_OK) return st;
    }
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
  double wall = 0, device = 0;
  int32_t st = MB_OK;
  @try {
    st = mb_run_sample(c, 1, &wall, &device, err, err_cap);
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
