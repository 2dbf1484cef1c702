#include "rtcanboot/object_dictionary.hpp"

#include "rtcanboot/bytes.hpp"

namespace rtcanboot::canopen {

namespace {

std::uint32_t string_length(const char* text) {
  std::uint32_t length = 0;
  if (text != nullptr) {
    while (text[length] != '\0') ++length;
  }
  return length;
}

void set_string(ObjectDictionary::ReadValue& value, const char* text) {
  // VISIBLE_STRING bytes are the characters themselves; no terminating NUL is transferred.
  value.data = reinterpret_cast<const std::uint8_t*>(text != nullptr ? text : "");
  value.size = string_length(text);
}

void set_number(ObjectDictionary::ReadValue& value, std::uint32_t number, DataType type) {
  store_le32(value.scratch, number);
  value.data = value.scratch;
  value.size = data_type_size(type);
}

}  // namespace

ObjectDictionary::ObjectDictionary(ProgramControl& program, const NodeConfig& config)
    : program_(program), config_(config), heartbeat_ms_(config.heartbeat_ms) {}

ObjectDictionary::Lookup ObjectDictionary::find(std::uint16_t index, std::uint8_t sub) const {
  Lookup result;
  result.index = index;
  result.sub = sub;
  if ((index == od::kRtcanbootInfo && config_.info == nullptr) ||
      (index == od::kSelfTest && config_.self_test == nullptr) ||
      (index == od::kSectorDigests && config_.sector_digests == nullptr) ||
      (index == od::kListenAlong && config_.listen_along == nullptr) ||
      (index == od::kSigningKeys && config_.keys == nullptr) ||
      (index == od::kProvisioning && config_.provisioning == nullptr)) {
    result.abort = Abort::kNoObject;
    return result;
  }
  // Every program number 1..program_count() is described by the table's sub 1.
  std::uint8_t table_sub = sub;
  if (is_program_array(index) && sub >= 1) {
    if (sub > program_.program_count()) {
      result.abort = Abort::kNoSubIndex;
      return result;
    }
    table_sub = 1;
  }
  bool index_known = false;
  for (const OdEntry& entry : object_dictionary()) {
    if (entry.index != index) continue;
    index_known = true;
    if (entry.sub == table_sub) {
      result.entry = &entry;
      return result;
    }
  }
  result.abort = index_known ? Abort::kNoSubIndex : Abort::kNoObject;
  return result;
}

Abort ObjectDictionary::read(const Lookup& object, ReadValue& value) const {
  const OdEntry& entry = *object.entry;
  if (!readable(entry.access)) return Abort::kWriteOnly;
  const std::uint8_t sub = object.sub;
  std::uint32_t number = entry.default_value;
  switch (entry.index) {
    case 0x1008:
      set_string(value, config_.device_name);
      return Abort::kNone;
    case 0x100A:
      set_string(value, config_.software_version);
      return Abort::kNone;
    case od::kProducerHeartbeat:
      number = heartbeat_ms_;
      break;
    case od::kIdentity: {
      const std::uint32_t identity[] = {entry.default_value, config_.identity.vendor_id,
                                        config_.identity.product_code, config_.identity.revision,
                                        config_.identity.serial};
      number = identity[sub];
      break;
    }
    case od::kProgramData:
    case od::kProgramControl:
    case od::kSoftwareId:
    case od::kFlashStatus:
      if (sub == 0) {
        number = program_.program_count();
      } else if (entry.index == od::kProgramControl) {
        number = program_.control_state(sub);
      } else if (entry.index == od::kSoftwareId) {
        number = program_.software_id(sub);
      } else {
        number = program_.flash_status(sub);
      }
      break;
    case od::kRtcanbootInfo: {
      const RtcanbootInfo& info = *config_.info;
      const std::uint32_t fields[] = {
          entry.default_value,     info.running_program,
          info.bootloader_version, info.app_region_start,
          info.app_region_size,    static_cast<std::uint32_t>(info.boot_reason),
          info.image_version,      static_cast<std::uint32_t>(info.trial_state),
          info.boot_attempts,      info.security_counter};
      number = fields[sub];
      break;
    }
    case od::kSelfTest:
      if (sub == 1) number = static_cast<std::uint32_t>(config_.self_test->self_test_state());
      if (sub == 2) {
        set_string(value, config_.self_test->self_test_report());
        return Abort::kNone;
      }
      if (sub == 3) number = config_.self_test->self_test_failed();
      break;
    case od::kSigningKeys:
      if (sub == 1) number = static_cast<std::uint32_t>(config_.keys->key_state());
      if (sub == 2) {
        value.data = config_.keys->key_hashes(&value.size);
        return Abort::kNone;
      }
      break;
    case od::kProvisioning:
      if (sub == 1) number = config_.provisioning->provisioning_sequence();
      if (sub == 2) {
        value.data = config_.provisioning->provisioning_record(&value.size);
        return Abort::kNone;
      }
      if (sub == 3) {
        number = static_cast<std::uint32_t>(config_.provisioning->provisioning_request_state());
      }
      break;
    case od::kSectorDigests: {
      const SectorDigestAccess& digests = *config_.sector_digests;
      if (sub == 1) number = digests.digest_sectors();
      if (sub == 2) number = static_cast<std::uint32_t>(digests.digest_state());
      if (sub == 3) {
        // Points at the bootloader's table: it only changes on a write to sub 1, which the
        // single SDO server channel cannot take while this upload runs.
        value.data = digests.digest_bytes(&value.size);
        return Abort::kNone;
      }
      if (sub == 4) number = static_cast<std::uint32_t>(digests.install_state());
      if (sub == 5) number = digests.installed_length();
      if (sub == 6) number = digests.installed_crc32();
      break;
    }
    case od::kListenAlong: {
      const ListenAlongAccess& listen = *config_.listen_along;
      if (sub >= 1 && sub <= 3) number = listen.listen_setting(sub);
      if (sub == 4) number = static_cast<std::uint32_t>(listen.listen_state());
      if (sub == 5) number = listen.listen_gap_bytes();
      if (sub == 6) {
        value.data = listen.listen_gap_list(&value.size);
        return Abort::kNone;
      }
      break;
    }
    default:
      break;
  }
  set_number(value, number, entry.type);
  return Abort::kNone;
}

Abort ObjectDictionary::write(const Lookup& object, const std::uint8_t* data, std::uint32_t size) {
  const OdEntry& entry = *object.entry;
  if (!writable(entry.access)) return Abort::kReadOnly;
  if (size != data_type_size(entry.type)) {
    return size > data_type_size(entry.type) ? Abort::kLengthTooHigh : Abort::kLengthTooLow;
  }
  switch (entry.index) {
    case od::kProducerHeartbeat:
      heartbeat_ms_ = load_le16(data);
      return Abort::kNone;
    case od::kProgramControl:
      return program_.control(object.sub, data[0]);
    case od::kSelfTest:
      if (data[0] != kSelfTestRun) return Abort::kValueRange;
      return config_.self_test->request_self_test();
    case od::kSectorDigests:
      return config_.sector_digests->request_digests(load_le32(data));
    case od::kListenAlong:
      if (object.sub == 4) return config_.listen_along->listen_command(data[0]);
      return config_.listen_along->set_listen_setting(object.sub, load_le32(data));
    default:
      return Abort::kUnsupportedAccess;
  }
}

DownloadSink* ObjectDictionary::domain_sink(const Lookup& object) {
  if (object.entry->index == od::kSigningKeys) return config_.keys->key_sink();
  if (object.entry->index == od::kProvisioning) return config_.provisioning->provisioning_sink();
  if (object.entry->index != od::kProgramData) return nullptr;
  return program_.program_data(object.sub);
}

}  // namespace rtcanboot::canopen
