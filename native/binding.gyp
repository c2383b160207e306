{
  "targets": [
    {
      "target_name": "strata_native",
      "sources": ["strata_native.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE", "_FILE_OFFSET_BITS=64"],
      "cflags_c": ["-std=c11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-std=c11", "-O2", "-Wall"]
      }
    }
  ]
}
