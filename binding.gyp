{
  "variables": {
    "minilzo_dir": "<!(node native/config.mjs minilzo)"
  },
  "targets": [
    {
      "target_name": "vmcore_native",
      "sources": [
        "native/pages.c",
        "native/libdeflate/lib/deflate_compress.c",
        "native/libdeflate/lib/zlib_compress.c",
        "native/libdeflate/lib/adler32.c",
        "native/libdeflate/lib/utils.c",
        "native/libdeflate/lib/x86/cpu_features.c",
        "native/libdeflate/lib/arm/cpu_features.c"
      ],
      "include_dirs": ["native/libdeflate"],
      "cflags": ["-O2", "-Wall", "-Wno-sign-compare", "-fvisibility=hidden"],
      "conditions": [
        ["minilzo_dir!=''", { "defines": ["HAVE_MINILZO"], "include_dirs": ["<(minilzo_dir)"] }]
      ]
    }
  ]
}
