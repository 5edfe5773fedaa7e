{
  "targets": [
    {
      "target_name": "vmcore_deflate",
      "sources": ["native/deflate.c"],
      "libraries": ["-ldeflate"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
