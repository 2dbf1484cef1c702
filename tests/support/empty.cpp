// Keeps the test support library non-empty before its first helpers exist.
namespace rtcanboot::test {}
