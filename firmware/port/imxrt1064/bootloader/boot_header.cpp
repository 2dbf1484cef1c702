// The boot ROM's view of the bootloader: FCB at 0x7000_0000, IVT + boot data at 0x7000_1000
// and the flash-resident boot vector table at 0x7000_2000 (the IVT entry).
#include "rtcanboot/imxrt1064/boot_header.hpp"

#include "rtcanboot/memory_map.hpp"

extern "C" {
extern std::uint32_t __stack_top[];
void rtcanboot_reset_stub();
void rtcanboot_boot_fault();
}

namespace rtcanboot::imxrt1064 {

namespace {

struct BootVectors {
  const void* initial_sp;
  void (*handlers[15])();
};

}  // namespace

[[gnu::section(".boot.fcb"), gnu::used]] constinit const FlexspiNorConfig kBootFcb =
    make_w25q32jv_fcb();

[[gnu::section(".boot.vectors"), gnu::used]] constinit const BootVectors kBootVectors = {
    __stack_top,
    {rtcanboot_reset_stub, rtcanboot_boot_fault, rtcanboot_boot_fault, rtcanboot_boot_fault,
     rtcanboot_boot_fault, rtcanboot_boot_fault, nullptr, nullptr, nullptr, nullptr,
     rtcanboot_boot_fault, rtcanboot_boot_fault, nullptr, rtcanboot_boot_fault,
     rtcanboot_boot_fault}};

// XIP image: start = the FlexSPI2 base, size = the bootloader region (the image fits in it;
// the link asserts that), not a plugin.
[[gnu::section(".boot.data"), gnu::used]] constinit const BootData kBootData = {
    memory_map::kFlashBase, memory_map::kBootloaderSize, 0, 0xFFFF'FFFF};

[[gnu::section(".boot.ivt"), gnu::used]] constinit const ImageVectorTable kIvt = {
    kIvtHeader, &kBootVectors, 0, nullptr, &kBootData, &kIvt, nullptr, 0};

}  // namespace rtcanboot::imxrt1064
