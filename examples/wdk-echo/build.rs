//! Build script of `wdk-echo`: windows-drivers-rs's one call, which reads the WDK configuration
//! (`[package.metadata.wdk.driver-model]`, the installed WDK) and sets the driver's link arguments.

fn main() -> Result<(), wdk_build::ConfigError> {
    wdk_build::configure_wdk_binary_build()
}
