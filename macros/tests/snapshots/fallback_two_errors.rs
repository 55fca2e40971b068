// Input:
// #[wsk_endpoint(kind = "lisen", addr = "localhost:80")]
// struct Broken;
//
// Output (WSK_BLESS=1 cargo test -p wsk-macros to update):

struct Broken;
::core::compile_error! {
    "unknown endpoint kind `lisen`\n\n= help: did you mean `listen`?\n= note: expected one of `listen`, `connection`, `datagram`, `stream`"
}
::core::compile_error! {
    "`localhost` is a host name, not an address: WSK binds to numeric addresses\n\n= help: use `127.0.0.1:PORT` or `[::1]:PORT`"
}
const _: () = {
    #[automatically_derived]
    impl ::wsk::Endpoint for Broken {
        fn config(&self) -> &'static ::wsk::__private::Config {
            &::wsk::__private::Config::FALLBACK
        }
        fn start_with(
            &'static self,
            _: &'static ::wsk::Runtime,
            _: ::core::option::Option<::wsk::SocketAddr>,
        ) -> ::wsk::Result<()> {
            ::core::result::Result::Ok(())
        }
    }
};
