/* Boot header of the twin test firmwares: FlexSPI NOR configuration block (W25Q32JV, as the
 * RT1064 EVK), image vector table and boot data. Written from the layout in
 * docs/twin.md / the RT1064 fact sheet. */
#include <stdint.h>

extern const uint32_t __vectors_start[];
extern const uint32_t __image_start[];
extern const uint32_t __image_size[];

__attribute__((section(".boot.fcb"), used)) const uint32_t twin_test_fcb[128] = {
    [0] = 0x42464346u,       /* tag 'FCFB' */
    [1] = 0x56010400u,       /* version V1.4.0 */
    [3] = 0x00030301u,       /* readSampleClkSrc 1, csHoldTime 3, csSetupTime 3 */
    [16] = 0x00000010u,      /* controllerMiscOption: SafeConfigFreq */
    [17] = 0x00070401u,      /* deviceType serial NOR, 4 pads, serialClkFreq 7 */
    [20] = 0x00400000u,      /* sflashA1Size 4 MiB */
    [32 + 0] = 0x0A1804EBu,  /* seq 0: quad I/O read 0xEB, 24-bit address */
    [32 + 1] = 0x26043206u,  /*        dummy 6, read */
    [32 + 4] = 0x24040405u,  /* seq 1: read status 0x05 */
    [32 + 12] = 0x00000406u, /* seq 3: write enable 0x06 */
    [32 + 20] = 0x08180420u, /* seq 5: sector erase 0x20 */
    [32 + 32] = 0x081804D8u, /* seq 8: block erase 0xD8 */
    [32 + 36] = 0x08180402u, /* seq 9: page program 0x02 */
    [32 + 37] = 0x00002004u, /*        write */
    [32 + 44] = 0x00000460u, /* seq 11: chip erase 0x60 */
    [112] = 256u,            /* pageSize */
    [113] = 4096u,           /* sectorSize */
    [114] = 0x00000001u,     /* ipcmdSerialClkFreq 30 MHz */
    [116] = 0x00010000u,     /* blockSize */
};

struct boot_data {
  uint32_t start, size, plugin, placeholder;
};

__attribute__((section(".boot.data"), used)) const struct boot_data twin_test_boot_data = {
    (uint32_t)__image_start, (uint32_t)__image_size, 0, 0xFFFFFFFFu};

__attribute__((section(".boot.ivt"), used))
const uint32_t twin_test_ivt[8] = {0x412000D1u,
                                   (uint32_t)__vectors_start,
                                   0,
                                   0,
                                   (uint32_t)&twin_test_boot_data,
                                   (uint32_t)twin_test_ivt,
                                   0,
                                   0};
