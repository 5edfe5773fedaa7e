/*
 * plant: put recognisable content into the test guest's memory for the page-filtering tests
 * (built static by build-initramfs.sh --plant, started by init.sh with vmcore_plant=1).
 *
 *   plant ANON_MIB FREED_MIB CACHE_FILE CACHE_MIB
 *
 * - ANON_MIB of anonymous memory, every page filled with VMCORE-ANON-MARKER, held until the
 *   guest dies (user data: gone at dump level 8);
 * - CACHE_FILE of CACHE_MIB written from one page filled with VMCORE-CACHE-MARKER, which is
 *   cleared afterwards (page cache: gone at level 2);
 * - FREED_MIB filled with VMCORE-FREED-MARKER and unmapped (free pages: gone at level 16); the
 *   per-CPU free list is then drained to the buddy allocator and 2 MiB more anonymous memory
 *   is touched, which takes back the pages still on that list and zero-fills them.
 * Each content is written straight into its final pages, so no stray copy is left elsewhere, and
 * the markers are put together at run time, so the program's own pages do not hold them.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096

static void fill(char *p, size_t n, const char *what) {
  char m[64];
  snprintf(m, sizeof m, "VMCORE-%s-MARKER-0123456789abcdef/", what);
  size_t l = strlen(m);
  for (size_t i = 0; i < n; i += PAGE)
    for (size_t j = 0; j + l <= PAGE; j += l) memcpy(p + i + j, m, l);
}

static char *anon(size_t n) {
  char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("plant: mmap");
    exit(1);
  }
  return p;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: plant ANON_MIB FREED_MIB CACHE_FILE CACHE_MIB\n");
    return 2;
  }
  size_t anonB = (size_t)atoi(argv[1]) << 20, freedB = (size_t)atoi(argv[2]) << 20, cacheB = (size_t)atoi(argv[4]) << 20;
  char *a = anon(anonB);
  fill(a, anonB, "ANON");
  char *buf = anon(PAGE);
  fill(buf, PAGE, "CACHE");
  int fd = open(argv[3], O_CREAT | O_TRUNC | O_WRONLY, 0644);
  if (fd < 0) {
    perror("plant: open");
    return 1;
  }
  for (size_t i = 0; i < cacheB; i += PAGE)
    if (write(fd, buf, PAGE) != PAGE) {
      perror("plant: write");
      return 1;
    }
  fsync(fd);
  close(fd);
  memset(buf, 0, PAGE);
  char *f = anon(freedB);
  fill(f, freedB, "FREED");
  munmap(f, freedB);
  /* Most of those pages now sit on this CPU's free list (pcp), not yet buddy pages. Each
     vm.stat_refresh decays the list's high mark by 1/8 and frees the excess to the buddy
     allocator (mm/vmstat.c refresh_cpu_vm_stats -> decay_pcp_high, 6.7+); the few pages left
     are taken back by the 2 MiB touched next. */
  for (int i = 0; i < 64; i++) {
    int s = open("/proc/sys/vm/stat_refresh", O_WRONLY);
    if (s < 0) break;
    (void)!write(s, "1", 1);
    close(s);
  }
  char *z = anon(2 << 20);
  for (size_t i = 0; i < (2 << 20); i += PAGE) z[i] = 1;
  printf("plant: %zu MiB anonymous, %zu MiB freed, %zu MiB in %s\n", anonB >> 20, freedB >> 20, cacheB >> 20, argv[3]);
  fflush(stdout);
  for (;;) pause();
}
