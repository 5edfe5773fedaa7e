{
  "variables": {
    "with_libdeflate": "<!(node native/config.mjs libdeflate)",
    "with_node_zlib": "<!(node native/config.mjs nodezlib)",
    "minilzo_dir": "<!(node native/config.mjs minilzo)"
  },
  "targets": [
    {
      "target_name": "vmcore_native",
      "sources": ["native/pages.c"],
      "cflags": ["-O2", "-Wall"],
      "conditions": [
        ["with_libdeflate==1", { "defines": ["HAVE_LIBDEFLATE"], "libraries": ["-ldeflate"] }],
        ["with_node_zlib==1", { "defines": ["HAVE_NODE_ZLIB"] }],
        ["minilzo_dir!=''", { "defines": ["HAVE_MINILZO"], "include_dirs": ["<(minilzo_dir)"] }]
      ]
    }
  ]
}
