#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "mgmt/domain_codec.h"
#include "mgmt/domain_toml.h"

namespace vireo::mgmt {
namespace {

// A libvirt definition using every element of the supported subset.
constexpr const char* kFullXml = R"(<domain type='kvm'>
  <name>web1</name>
  <uuid>6BA7B810-9DAD-11D1-80B4-00C04FD430C8</uuid>
  <memory unit='MiB'>512</memory>
  <currentMemory unit='KiB'>262144</currentMemory>
  <vcpu placement='static'>4</vcpu>
  <cputune>
    <vcpupin vcpu='0' cpuset='1'/>
    <vcpupin vcpu='3' cpuset='0'/>
    <period>100000</period>
    <quota>150000</quota>
  </cputune>
  <memtune><hard_limit unit='G'>1</hard_limit></memtune>
  <cpu mode='host-passthrough'><topology sockets='1' cores='2' threads='2'/></cpu>
  <memoryBacking><hugepages/><locked/></memoryBacking>
  <os><type arch='x86_64'>hvm</type><kernel>/k</kernel><initrd>/i</initrd><cmdline>console=ttyS0 quiet</cmdline></os>
  <features><acpi/><apic/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/a.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/img/b.raw'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <interface type='ethernet'><mac address='52:54:00:12:34:56'/><target dev='tap0'/><model type='virtio'/></interface>
    <interface type='bridge'><source bridge='br0'/><model type='virtio'/></interface>
    <interface type='network'><source network='default'/><model type='virtio'/></interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='virtio' port='0'/></console>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='virtio'/>
    <vsock model='virtio'><cid auto='no' address='7'/></vsock>
  </devices>
</domain>)";

TEST(DomainXml, ParsesEverySupportedElement) {
  auto parsed = ParseDomainXml(kFullXml, /*strict=*/true);
  ASSERT_TRUE(parsed) << parsed.error().message;
  const DomainDef& d = parsed->def;
  EXPECT_TRUE(parsed->warnings.empty());
  EXPECT_EQ(d.name, "web1");
  EXPECT_EQ(d.uuid, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
  EXPECT_EQ(d.memory_bytes, 512ull << 20);
  EXPECT_EQ(d.current_memory_bytes, 256ull << 20);
  EXPECT_EQ(d.vcpus, 4u);
  EXPECT_EQ(d.vcpupin.at(0), "1");
  EXPECT_EQ(d.vcpupin.at(3), "0");
  EXPECT_EQ(d.cpu_period_us, 100000u);
  EXPECT_EQ(d.cpu_quota_us, 150000u);
  EXPECT_EQ(d.memory_hard_limit_bytes, 1ull << 30);
  EXPECT_EQ(d.cpu_mode, "host-passthrough");
  EXPECT_EQ(d.cores, 2u);
  EXPECT_TRUE(d.hugepages);
  EXPECT_TRUE(d.locked);
  EXPECT_EQ(d.kernel, "/k");
  EXPECT_EQ(d.initrd, "/i");
  EXPECT_EQ(d.cmdline, "console=ttyS0 quiet");
  EXPECT_TRUE(d.acpi);
  ASSERT_EQ(d.disks.size(), 2u);
  EXPECT_EQ(d.disks[0].format, "qcow2");
  EXPECT_EQ(d.disks[1].path, "/img/b.raw");
  EXPECT_TRUE(d.disks[1].readonly);
  ASSERT_EQ(d.interfaces.size(), 3u);
  EXPECT_EQ(d.interfaces[0].tap, "tap0");
  EXPECT_EQ(d.interfaces[0].mac, "52:54:00:12:34:56");
  EXPECT_EQ(d.interfaces[1].source, "br0");
  EXPECT_EQ(d.interfaces[2].source, "default");
  EXPECT_TRUE(d.serial);
  EXPECT_TRUE(d.virtio_console);
  EXPECT_TRUE(d.rng);
  EXPECT_TRUE(d.balloon);
  EXPECT_EQ(d.vsock_cid, 7u);
}

TEST(DomainXml, DumpRoundTripsWhatWasAccepted) {
  auto first = ParseDomainXml(kFullXml, true);
  ASSERT_TRUE(first);
  std::string xml = DomainToXml(first->def);
  auto second = ParseDomainXml(xml, true);
  ASSERT_TRUE(second) << second.error().message << "\n" << xml;
  EXPECT_EQ(DomainToJson(first->def), DomainToJson(second->def));
  EXPECT_EQ(DomainToXml(second->def), xml);  // a fixed point
}

TEST(DomainXml, UnsupportedElementsAreWarningsOrRefusedWhenStrict) {
  const char* xml = R"(<domain type='kvm'><name>a</name><memory>65536</memory>
    <on_crash>restart</on_crash>
    <os><type>hvm</type><kernel>/k</kernel><boot dev='hd'/></os>
    <devices><graphics type='vnc'/><disk type='file' device='disk'><source file='/d'/>
      <target dev='vda' bus='virtio'/><iotune/></disk></devices></domain>)";
  auto parsed = ParseDomainXml(xml, false);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->def.memory_bytes, 64ull << 20);  // no unit: KiB
  std::vector<std::string> expected = {"unsupported element /domain/on_crash",
                                       "unsupported element /domain/os/boot",
                                       "unsupported element /domain/devices/graphics",
                                       "unsupported element /domain/devices/disk/iotune"};
  EXPECT_EQ(parsed->warnings, expected);
  auto strict = ParseDomainXml(xml, true);
  ASSERT_FALSE(strict);
  EXPECT_EQ(strict.error().message, "unsupported element /domain/on_crash (refused with --strict)");
}

Result<ParsedDomain> WithBody(const std::string& inner) {
  return ParseDomainXml("<domain type='kvm'><name>a</name>" + inner + "</domain>", false);
}

TEST(DomainXml, ErrorsNameTheElementAndTheReason) {
  struct Case {
    std::string xml, error;
  };
  const std::string os = "<os><type>hvm</type><kernel>/k</kernel></os>";
  std::vector<Case> cases = {
      {"<memory unit='furlongs'>1</memory>" + os, "memory: unknown unit 'furlongs'"},
      {"<memory unit='MiB'>8</memory>" + os, "memory: 8192 KiB is below Vireo's minimum of 16 MiB"},
      {"<memory unit='MiB'>x</memory>" + os, "memory: 'x' is not a non-negative integer"},
      {os, "memory: the domain has no <memory> element"},
      {"<memory unit='MiB'>64</memory><vcpu>2</vcpu><cpu><topology sockets='1' cores='1' "
       "threads='1'/></cpu>" +
           os,
       "cpu/topology: sockets 1 x cores 1 x threads 1 = 1, but vcpu is 2"},
      {"<memory unit='MiB'>64</memory><cputune><vcpupin vcpu='0' cpuset='0-3'/></cputune>" + os,
       "cputune/vcpupin vcpu='0' cpuset='0-3': Vireo pins a vCPU to one host CPU"},
      {"<memory unit='MiB'>64</memory>" + os +
           "<devices><disk type='block' device='disk'/></devices>",
       "devices/disk type='block': Vireo supports type='file'"},
      {"<memory unit='MiB'>64</memory>" + os +
           "<devices><interface type='ethernet'><model type='e1000'/></interface></devices>",
       "devices/interface model type='e1000': Vireo's NIC is virtio"},
      {"<memory unit='MiB'>64</memory><os><type>hvm</type></os>",
       "os/kernel: a domain needs a kernel (direct boot)"},
  };
  for (const Case& c : cases) {
    auto parsed = WithBody(c.xml);
    ASSERT_FALSE(parsed) << c.xml;
    EXPECT_EQ(parsed.error().message.substr(0, c.error.size()), c.error) << c.xml;
  }
}

// Found by the domain_codec fuzzer: a CR in a JSON path became LF after dumpxml (XML
// end-of-line normalisation), so the definition changed on its way through XML.
TEST(DomainJson, ControlCharactersAreRefused) {
  auto cr = ParseDomainJson(R"({"name": "a", "kernel": "/k\rx"})", false);
  ASSERT_FALSE(cr);
  EXPECT_EQ(cr.error().message, "os/kernel: control character 0x0d is not allowed; remove it");
  EXPECT_FALSE(ParseDomainJson(R"({"name": "a", "kernel": "/k", "cmdline": "a\tb"})", false));
  EXPECT_FALSE(
      ParseDomainJson(R"({"name": "a", "kernel": "/k", "disks": [{"path": "/d\u007f"}]})", false));
  EXPECT_TRUE(
      ParseDomainJson(R"({"name": "a", "kernel": "/k", "cmdline": "console=ttyS0 q"})", false));
}

// Found by the domain_codec fuzzer: a path that is not UTF-8 was accepted, and the daemon
// could not store it as JSON.
TEST(DomainXml, TextMustBeUtf8) {
  auto bad = ParseDomainXml(
      "<domain><name>a</name><memory>65536</memory><os><kernel>/\xff</kernel></os></domain>",
      false);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "os/kernel: not valid UTF-8 text");
  auto overlong = ParseDomainXml(
      "<domain><name>a</name><memory>65536</memory><os><kernel>/k</kernel><cmdline>\xc0\xaf"
      "</cmdline></os></domain>",
      false);
  ASSERT_FALSE(overlong);
  auto good = ParseDomainXml(
      "<domain><name>a</name><memory>65536</memory><os><kernel>/k\xc3\xa9</kernel></os></domain>",
      false);
  EXPECT_TRUE(good) << good.error().message;
}

TEST(DomainXml, MalformedXmlIsAnErrorWithItsOffset) {
  auto parsed = ParseDomainXml("<domain><name>a</name", false);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("malformed XML at offset"), std::string::npos);
  auto wrong_root = ParseDomainXml("<network/>", false);
  ASSERT_FALSE(wrong_root);
  EXPECT_EQ(wrong_root.error().message, "XML: the root element is <network>, expected <domain>");
}

TEST(DomainUnits, LibvirtUnitsScale) {
  EXPECT_EQ(*ScaleUnit(3, ""), 3072u);
  EXPECT_EQ(*ScaleUnit(3, "b"), 3u);
  EXPECT_EQ(*ScaleUnit(3, "KB"), 3000u);
  EXPECT_EQ(*ScaleUnit(3, "k"), 3072u);
  EXPECT_EQ(*ScaleUnit(2, "MB"), 2000000u);
  EXPECT_EQ(*ScaleUnit(2, "GiB"), 2ull << 30);
  EXPECT_EQ(*ScaleUnit(1, "TiB"), 1ull << 40);
  EXPECT_FALSE(ScaleUnit(1, "mib"));  // units are case-sensitive in libvirt
  EXPECT_FALSE(ScaleUnit(UINT64_MAX, "KiB"));
}

TEST(DomainJson, ParsesSizesAndRoundTrips) {
  auto parsed = ParseDomainJson(R"({"name": "j1", "memory": "64M", "vcpus": 2, "kernel": "/k",
      "disks": [{"path": "/d.qcow2", "format": "qcow2"}], "rng": true,
      "limits": {"memory_hard_limit": "1G"}, "frobnicate": 1})",
                                false);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->def.memory_bytes, 64ull << 20);
  EXPECT_EQ(parsed->def.disks[0].target, "vda");
  EXPECT_EQ(parsed->def.memory_hard_limit_bytes, 1ull << 30);
  EXPECT_EQ(parsed->warnings, std::vector<std::string>{"unsupported key frobnicate"});
  EXPECT_EQ(parsed->def.uuid.size(), 36u);  // generated
  auto again = ParseDomainJson(DomainToJson(parsed->def).dump(), true);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(DomainToJson(again->def), DomainToJson(parsed->def));
  // JSON and XML describe the same domain.
  auto via_xml = ParseDomainXml(DomainToXml(parsed->def), true);
  ASSERT_TRUE(via_xml) << via_xml.error().message;
  EXPECT_EQ(DomainToJson(via_xml->def), DomainToJson(parsed->def));
}

TEST(DomainJson, ErrorsNameTheKey) {
  auto bad_type = ParseDomainJson(R"({"name": "a", "vcpus": "two", "kernel": "/k"})", false);
  ASSERT_FALSE(bad_type);
  EXPECT_EQ(bad_type.error().message, "vcpus: expected a non-negative integer");
  auto bad_name = ParseDomainJson(R"({"name": "a/b", "kernel": "/k"})", false);
  ASSERT_FALSE(bad_name);
  EXPECT_EQ(bad_name.error().message, "name 'a/b': only letters, digits and _ . + - are allowed");
  EXPECT_FALSE(ParseDomainJson("{not json", false));
  // Numbers past 32 bits are refused, not truncated onto a valid value.
  auto huge = ParseDomainJson(R"({"name": "a", "vcpus": 4294967297, "kernel": "/k"})", false);
  ASSERT_FALSE(huge);
  EXPECT_EQ(huge.error().message, "vcpus: 4294967297 is out of range");
  EXPECT_FALSE(
      ParseDomainJson(R"({"name": "a", "kernel": "/k", "vcpupin": {"4294967296": "0"}})", false));
  EXPECT_FALSE(ParseDomainJson(R"({"name": "a", "kernel": "/k", "vcpupin": {"0x": "0"}})", false));
  EXPECT_FALSE(
      ParseDomainXml("<domain><name>a</name><memory>65536</memory><vcpu>4294967297</vcpu>"
                     "<os><kernel>/k</kernel></os></domain>",
                     false));
}

// The JSON example of docs/management.md, written as TOML.
constexpr const char* kFullToml = R"(# a comment
name = "web2"
uuid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
memory = "256M"
current_memory = "128M"
vcpus = 2
kernel = "/boot/vmlinuz"
initrd = "/boot/initrd.img"
cmdline = "console=ttyS0"
acpi = true
serial = true
rng = true
balloon = true
vsock_cid = 3
vcpupin = { 0 = "2", 1 = "3" }

[cpu]
mode = "host-passthrough"
sockets = 1
cores = 2
threads = 1

[[disks]]
path = "/var/lib/vireo/images/web2.qcow2"
format = "qcow2"

[[interfaces]]
type = "ethernet"
tap = "tap0"
mac = "52:54:00:12:34:56"

[limits]
cpu_quota_us = 50000
cpu_period_us = 100000
memory_hard_limit = "1G"
)";

TEST(DomainToml, ReadsTheSameKeysAsJson) {
  auto toml = ParseDomainToml(kFullToml, /*strict=*/true);
  ASSERT_TRUE(toml) << toml.error().message;
  EXPECT_TRUE(toml->warnings.empty());
  auto json = ParseDomainJson(R"({"name": "web2", "uuid": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
      "memory": "256M", "current_memory": "128M", "vcpus": 2, "vcpupin": {"0": "2", "1": "3"},
      "cpu": {"mode": "host-passthrough", "sockets": 1, "cores": 2, "threads": 1},
      "kernel": "/boot/vmlinuz", "initrd": "/boot/initrd.img", "cmdline": "console=ttyS0",
      "disks": [{"path": "/var/lib/vireo/images/web2.qcow2", "format": "qcow2"}],
      "interfaces": [{"type": "ethernet", "tap": "tap0", "mac": "52:54:00:12:34:56"}],
      "rng": true, "balloon": true, "vsock_cid": 3,
      "limits": {"cpu_quota_us": 50000, "cpu_period_us": 100000, "memory_hard_limit": "1G"}})",
                              true);
  ASSERT_TRUE(json) << json.error().message;
  EXPECT_EQ(DomainToJson(toml->def), DomainToJson(json->def));
  EXPECT_EQ(toml->def.memory_bytes, 256ull << 20);
  EXPECT_EQ(toml->def.vcpupin.at(1), "3");
  EXPECT_EQ(toml->def.memory_hard_limit_bytes, 1ull << 30);
}

TEST(DomainToml, ParseDomainDetectsToml) {
  auto parsed = ParseDomain("\n# vireo\nname = 'toml'\nkernel = '/k'\nmemory = 67108864\n", false);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->def.name, "toml");
  EXPECT_EQ(parsed->def.memory_bytes, 64ull << 20);
  // A table header first is TOML too.
  auto table_first = ParseDomain("[cpu]\nmode = 'host-model'\n", false);
  ASSERT_FALSE(table_first);
  EXPECT_EQ(table_first.error().message, "name: a domain needs a name");
  auto no_kernel = ParseDomain("name = 'toml'", false);
  ASSERT_FALSE(no_kernel);
  EXPECT_EQ(no_kernel.error().message, "os/kernel: a domain needs a kernel (direct boot)");
}

TEST(DomainToml, ErrorsNameTheKey) {
  auto bad_type = ParseDomainToml("name = 'a'\nkernel = '/k'\nvcpus = 'two'\n", false);
  ASSERT_FALSE(bad_type);
  EXPECT_EQ(bad_type.error().message, "vcpus: expected a non-negative integer");
  auto negative = ParseDomainToml("name = 'a'\nkernel = '/k'\nvcpus = -2\n", false);
  ASSERT_FALSE(negative);
  EXPECT_EQ(negative.error().message, "vcpus: expected a non-negative integer");
  auto nested = ParseDomainToml("name = 'a'\nkernel = '/k'\n[[disks]]\npath = 4\n", false);
  ASSERT_FALSE(nested);
  EXPECT_EQ(nested.error().message, "disks[0].path: expected a string");
  auto date = ParseDomainToml("name = 'a'\nkernel = '/k'\n[cpu]\nmode = 1979-05-27\n", false);
  ASSERT_FALSE(date);
  EXPECT_EQ(date.error().message, "cpu.mode: a TOML date or time is not a valid value here");
  auto malformed = ParseDomainToml("name = 'a'\nkernel = \n", false);
  ASSERT_FALSE(malformed);
  EXPECT_EQ(malformed.error().message.rfind("definition: malformed TOML at line 2, column", 0), 0u)
      << malformed.error().message;
  // Table headers without a key, on which toml++ 3.3's debug build asserts (the fuzzer found
  // them): a parse error naming the line.
  using std::string_view_literals::operator""sv;
  for (std::string_view header :
       {"[[[1]]]"sv, "[\n"sv, "[ \t="sv, "[[="sv, "name = 'a'\n[\0x]"sv}) {
    auto bad = ParseDomainToml(header, false);
    ASSERT_FALSE(bad) << header;
    EXPECT_EQ(bad.error().message.rfind("definition: malformed TOML at line ", 0), 0u)
        << bad.error().message;
  }
  EXPECT_TRUE(ParseDomainToml("name = 'a'\nkernel = '/k'\n[ cpu ]\nmode = 'host-model'\n", false));
  // Characters toml++ 3.3 would reach unreachable code on (found by the fuzzer), anywhere,
  // even in a string; escaped they are fine, and so are other non-ASCII characters.
  for (std::string_view text : {"na\xcd\x9c = 1"sv, "s = \"\"\"\\\n\xc2\xa7\"\"\"\n"sv,
                                "name = 'a'\nkernel = '/k\xc3\xa9'\n"sv}) {
    auto bad = ParseDomainToml(text, false);
    ASSERT_FALSE(bad) << text;
    EXPECT_NE(bad.error().message.find("as \\u"), std::string::npos) << bad.error().message;
  }
  auto escaped = ParseDomainToml(
      "# \xe2\x82\xac\nname = 'a'\nkernel = \"/k\\u00e9\"\ncmdline = 'x \xe2\x82\xac'\n", false);
  ASSERT_TRUE(escaped) << escaped.error().message;
  EXPECT_EQ(escaped->def.kernel, "/k\xc3\xa9");
  EXPECT_EQ(escaped->def.cmdline, "x \xe2\x82\xac");
  const std::string dumped = DomainToToml(escaped->def);
  EXPECT_NE(dumped.find("\\u00E9"), std::string::npos) << dumped;
  auto again = ParseDomainToml(dumped, true);
  ASSERT_TRUE(again) << again.error().message << "\n" << dumped;
  EXPECT_EQ(again->def.kernel, "/k\xc3\xa9");
  auto size = ParseDomainToml("name = 'a'\nkernel = '/k'\nmemory = '64 parsecs'\n", false);
  ASSERT_FALSE(size);
  EXPECT_NE(size.error().message.find("memory: "), std::string::npos) << size.error().message;
}

TEST(DomainToml, UnknownKeysWarnOrFailWithStrict) {
  const char* text = "name = 'a'\nkernel = '/k'\ncolour = 'red'\n[cpu]\nflags = ['x']\n";
  auto lax = ParseDomainToml(text, false);
  ASSERT_TRUE(lax) << lax.error().message;
  EXPECT_EQ(lax->warnings,
            (std::vector<std::string>{"unsupported key cpu.flags", "unsupported key colour"}));
  auto strict = ParseDomainToml(text, true);
  ASSERT_FALSE(strict);
  EXPECT_EQ(strict.error().message, "unsupported key cpu.flags (refused with --strict)");
}

TEST(DomainToml, DumpRoundTrips) {
  auto xml = ParseDomainXml(kFullXml, true);
  ASSERT_TRUE(xml) << xml.error().message;
  const std::string toml = DomainToToml(xml->def);
  EXPECT_NE(toml.find("[[disks]]"), std::string::npos) << toml;
  auto again = ParseDomainToml(toml, /*strict=*/true);
  ASSERT_TRUE(again) << again.error().message << "\n" << toml;
  EXPECT_EQ(DomainToXml(again->def), DomainToXml(xml->def));
  // A memory limit past TOML's signed 64-bit integers goes out as a string and comes back.
  DomainDef big = xml->def;
  big.memory_hard_limit_bytes = UINT64_MAX;
  auto big_again = ParseDomainToml(DomainToToml(big), true);
  ASSERT_TRUE(big_again) << big_again.error().message;
  EXPECT_EQ(big_again->def.memory_hard_limit_bytes, UINT64_MAX);
}

TEST(DomainValidate, FilesAreCheckedWhenAsked) {
  char kernel[] = "/tmp/vireo-mgmt-kernel-XXXXXX";
  int fd = mkstemp(kernel);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "x", 1), 1);
  close(fd);
  DomainDef d;
  d.name = "v";
  d.kernel = kernel;
  d.memory_bytes = 32ull << 20;
  EXPECT_TRUE(Validate(d, true));
  d.disks.push_back({"/nonexistent/disk.img", "raw", "vda", false});
  auto missing = Validate(d, true);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message,
            "devices/disk source '/nonexistent/disk.img': No such file or directory; fix the path "
            "or create the file");
  EXPECT_TRUE(Validate(d, false));  // the daemon checks files at define and start
  d.disks.clear();
  // A kernel larger than the RAM can hold.
  ASSERT_EQ(truncate(kernel, 30ll << 20), 0);
  auto small = Validate(d, true);
  ASSERT_FALSE(small);
  EXPECT_NE(small.error().message.find("below what the kernel and initrd need"), std::string::npos);
  unlink(kernel);
}

}  // namespace
}  // namespace vireo::mgmt
