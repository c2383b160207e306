{
  # zstd and lz4 are linked from the system (Debian: libzstd-dev, liblz4-dev)
  # when their headers are there; without them the addon builds without the
  # codecs and strata decompresses in JS (src/store/codecs.ts).
  "variables": {
    "have_zstd": "<!(node -p \"require('fs').existsSync('/usr/include/zstd.h') ? 1 : 0\")",
    "have_lz4": "<!(node -p \"require('fs').existsSync('/usr/include/lz4.h') ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "strata_native",
      "sources": ["strata_native.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE", "_FILE_OFFSET_BITS=64"],
      "cflags_c": ["-std=c11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"],
      "libraries": ["-pthread"],
      "conditions": [
        ["have_zstd==1", { "defines": ["STRATA_HAVE_ZSTD"], "libraries": ["-lzstd"] }],
        ["have_lz4==1", { "defines": ["STRATA_HAVE_LZ4"], "libraries": ["-llz4"] }]
      ],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-std=c11", "-O2", "-Wall"]
      }
    }
  ]
}
